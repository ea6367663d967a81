package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// inertCalls are the calls a test may make before it takes the shared test data: none of them
// starts anything a skip would leave running.
var inertCalls = map[string]bool{
	"context.Background": true, "context.WithTimeout": true, "context.WithCancel": true,
	"t.TempDir": true, "t.Helper": true, "t.Parallel": true, "t.Name": true, "t.Fatal": true, "t.Fatalf": true,
	"os.WriteFile": true, "os.MkdirAll": true, "os.ReadFile": true, "time.Now": true,
	"testenv.DepsDir": true, "testenv.RepoRoot": true,
	"cancel": true, "make": true, "len": true, "append": true, "new": true,
}

// inertPrefixes are packages whose every function is inert (pure computations).
var inertPrefixes = []string{"filepath.", "strings.", "bytes.", "fmt.", "slog.", "time.", "errors."}

// TestSkipsComeFirst reads every test in the module: a test that needs the shared test data
// (it calls TestData or NeedsTestData, directly or through a helper of its package) must take it before it
// starts anything (a server, a model, a goroutine), so that `make test` from a plain clone skips
// it cleanly instead of leaving goroutines for the leak check. Before the first statement that
// reaches TestData, a test may only make the calls in inertCalls and inertPrefixes.
func TestSkipsComeFirst(t *testing.T) {
	root := RepoRoot(t)
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{} // by directory and package name
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "build" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		key := filepath.Dir(path) + " " + f.Name.Name
		pkgs[key] = append(pkgs[key], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, files := range pkgs {
		bad = append(bad, lateSkips(fset, root, files)...)
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
	if len(bad) > 0 {
		t.Log("call testenv.TestData first in these tests (it skips when ../shared/testdata is absent)")
	}
}

// lateSkips returns, for one package's test files, the tests that start something before they
// take the shared test data.
func lateSkips(fset *token.FileSet, root string, files []*ast.File) []string {
	funcs := map[string]*ast.FuncDecl{} // functions and methods, by name
	for _, f := range files {
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	memo := map[string]bool{}
	var reaches func(n ast.Node) bool
	reachesFunc := func(name string) bool {
		if v, ok := memo[name]; ok {
			return v
		}
		memo[name] = false // breaks recursion
		fd := funcs[name]
		memo[name] = fd != nil && reaches(fd.Body)
		return memo[name]
	}
	reaches = func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok && !found {
				switch fn := c.Fun.(type) {
				case *ast.SelectorExpr:
					if x, ok := fn.X.(*ast.Ident); ok && x.Name == "testenv" && (fn.Sel.Name == "TestData" || fn.Sel.Name == "NeedsTestData") {
						found = true
					} else if funcs[fn.Sel.Name] != nil && funcs[fn.Sel.Name].Recv != nil {
						found = reachesFunc(fn.Sel.Name)
					}
				case *ast.Ident:
					found = reachesFunc(fn.Name)
				}
			}
			return !found
		})
		return found
	}
	var bad []string
	for _, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil || !strings.HasPrefix(fd.Name.Name, "Test") || fd.Name.Name == "TestMain" {
				continue
			}
			first := -1
			for i, stmt := range fd.Body.List {
				if reaches(stmt) {
					first = i
					break
				}
			}
			for _, stmt := range fd.Body.List[:max(first, 0)] {
				if call := startingCall(stmt); call != "" {
					pos := fset.Position(stmt.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					bad = append(bad, rel+":"+strconv.Itoa(pos.Line)+": "+fd.Name.Name+" calls "+call+" before it takes the shared test data")
					break
				}
			}
		}
	}
	return bad
}

// startingCall returns the first call in stmt, outside function literals, that is not inert;
// "" when there is none.
func startingCall(stmt ast.Stmt) string {
	found := ""
	ast.Inspect(stmt, func(n ast.Node) bool {
		if found != "" {
			return false
		}
		switch n := n.(type) {
		case *ast.FuncLit:
			return false // declared here, run later
		case *ast.CallExpr:
			name := callName(n.Fun)
			if name == "" || inertCalls[name] || isConversion(n.Fun) {
				return true
			}
			for _, p := range inertPrefixes {
				if strings.HasPrefix(name, p) {
					return true
				}
			}
			found = name
		}
		return true
	})
	return found
}

// callName is "pkg.Func", "recv.Method" or "Func" for a call's function; "" for others.
func callName(e ast.Expr) string {
	switch fn := e.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		if x, ok := fn.X.(*ast.Ident); ok {
			return x.Name + "." + fn.Sel.Name
		}
		return "." + fn.Sel.Name
	}
	return ""
}

// isConversion reports conversions to basic types and slices (float32(x), []byte(s)).
func isConversion(e ast.Expr) bool {
	switch fn := e.(type) {
	case *ast.ArrayType:
		return true
	case *ast.Ident:
		switch fn.Name {
		case "int", "int64", "uint64", "uint32", "float32", "float64", "string", "byte", "rune":
			return true
		}
	}
	return false
}
