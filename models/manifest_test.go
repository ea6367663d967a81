package models

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validManifest returns a small valid manifest for tests to mutate.
func validManifest() Manifest {
	return Manifest{
		Schema: Schema,
		Packages: []Package{
			{Name: "pkg-a", Version: "1.2.3", SHA256: strings.Repeat("a", 64), License: "MIT"},
			{Name: "@scope/pkg-b", Version: "0.0.1-rc.1", SHA256: strings.Repeat("b", 64)},
		},
		Files: []File{
			{Name: "lib", Kind: KindLibrary, Package: "pkg-a@1.2.3", Path: "package/lib/x.so.1", Dest: "lib/x.so.1", SHA256: strings.Repeat("c", 64)},
			{Name: "det", Kind: KindModel, Package: "@scope/pkg-b@0.0.1-rc.1", Path: "package/model/det.onnx", Dest: "models/det.onnx", SHA256: strings.Repeat("d", 64), Input: []int64{1, 3, 240, 320}, Preprocessing: "v/255"},
		},
	}
}

// mustJSON marshals v or fails the test.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadEmbedded(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Schema != Schema {
		t.Errorf("schema = %d, want %d", m.Schema, Schema)
	}
	lib, err := m.File("onnxruntime")
	if err != nil {
		t.Fatal(err)
	}
	if lib.Kind != KindLibrary || lib.Dest != "lib/libonnxruntime.so.1" {
		t.Errorf("onnxruntime = %+v", lib)
	}
	det, err := m.File("fr_detect")
	if err != nil {
		t.Fatal(err)
	}
	if det.Kind != KindModel || !slices.Equal(det.Input, []int64{1, 3, 240, 320}) || det.Preprocessing == "" {
		t.Errorf("fr_detect = %+v", det)
	}
	for _, f := range m.Files {
		if _, err := m.Package(f.Package); err != nil {
			t.Errorf("file %s: %v", f.Name, err)
		}
		if f.Kind == KindModel && len(f.Input) != 4 {
			t.Errorf("model %s: input %v is not NCHW", f.Name, f.Input)
		}
	}
	// The embedded copy is the file in the repository.
	onDisk, err := os.ReadFile("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != manifestJSON {
		t.Error("embedded manifest differs from models/manifest.json")
	}
}

func TestParseValid(t *testing.T) {
	want := validManifest()
	got, err := Parse(mustJSON(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustJSON(t, got), mustJSON(t, want)) {
		t.Errorf("round trip changed the manifest:\n got %+v\nwant %+v", got, want)
	}
	if p, err := got.Package("@scope/pkg-b@0.0.1-rc.1"); err != nil || p.Name != "@scope/pkg-b" {
		t.Errorf("Package = %+v, %v", p, err)
	}
}

func TestParseRejects(t *testing.T) {
	mutations := []struct {
		name, want string
		mut        func(*Manifest)
	}{
		{"schema 0", "schema 0 is not supported", func(m *Manifest) { m.Schema = 0 }},
		{"schema 2", "schema 2 is not supported", func(m *Manifest) { m.Schema = 2 }},
		{"package without version", "name and version are required", func(m *Manifest) { m.Packages[0].Version = "" }},
		{"package name flag", "is not an npm package name", func(m *Manifest) { m.Packages[0].Name = "--registry=x" }},
		{"package name upper", "is not an npm package name", func(m *Manifest) { m.Packages[0].Name = "Pkg" }},
		{"package name stray @", "is not an npm package name", func(m *Manifest) { m.Packages[0].Name = "pkg@1" }},
		{"version range", "is not an exact version", func(m *Manifest) { m.Packages[0].Version = "^1.2.3" }},
		{"version spaces", "is not an exact version", func(m *Manifest) { m.Packages[0].Version = "1.2.3 x" }},
		{"duplicate package", "listed twice", func(m *Manifest) { m.Packages[1] = m.Packages[0] }},
		{"package sha short", "not 64 lowercase hex", func(m *Manifest) { m.Packages[0].SHA256 = "abc" }},
		{"package sha upper", "not 64 lowercase hex", func(m *Manifest) { m.Packages[0].SHA256 = strings.Repeat("A", 64) }},
		{"package sha not hex", "not 64 lowercase hex", func(m *Manifest) { m.Packages[0].SHA256 = strings.Repeat("g", 64) }},
		{"file without name", "name \"\" is not", func(m *Manifest) { m.Files[0].Name = "" }},
		{"file name newline", "is not 1 to 64", func(m *Manifest) { m.Files[0].Name = "a\nb" }},
		{"duplicate file", "listed twice", func(m *Manifest) { m.Files[1].Name = m.Files[0].Name }},
		{"unknown kind", "is neither", func(m *Manifest) { m.Files[0].Kind = "weights" }},
		{"unlisted package", "is not in packages", func(m *Manifest) { m.Files[0].Package = "pkg-a@9.9.9" }},
		{"file sha", "not 64 lowercase hex", func(m *Manifest) { m.Files[1].SHA256 = strings.Repeat("d", 63) }},
		{"dest dotdot", `has a ".." element`, func(m *Manifest) { m.Files[0].Dest = "../x.so" }},
		{"dest inner dotdot", "is not clean", func(m *Manifest) { m.Files[0].Dest = "lib/../../x.so" }},
		{"dest absolute", "is absolute", func(m *Manifest) { m.Files[0].Dest = "/etc/passwd" }},
		{"dest empty", "is empty", func(m *Manifest) { m.Files[0].Dest = "" }},
		{"dest dot", "is not clean", func(m *Manifest) { m.Files[0].Dest = "." }},
		{"dest unclean", "is not clean", func(m *Manifest) { m.Files[0].Dest = "lib//x.so" }},
		{"dest trailing slash", "is not clean", func(m *Manifest) { m.Files[0].Dest = "lib/" }},
		{"dest backslash", "backslash", func(m *Manifest) { m.Files[0].Dest = `..\x.so` }},
		{"dest control", "control character", func(m *Manifest) { m.Files[0].Dest = "lib/x\n.so" }},
		{"duplicate dest", "is also the dest of", func(m *Manifest) { m.Files[1].Dest = m.Files[0].Dest }},
		{"path dotdot", `has a ".." element`, func(m *Manifest) { m.Files[0].Path = "../package/x" }},
		{"path absolute", "is absolute", func(m *Manifest) { m.Files[0].Path = "/package/x" }},
		{"input zero", "dimension below 1", func(m *Manifest) { m.Files[1].Input = []int64{1, 0, 2, 2} }},
	}
	for _, tc := range mutations {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.mut(&m)
			checkRejected(t, mustJSON(t, m), tc.want)
		})
	}
	raw := []struct{ name, data, want string }{
		{"empty", "", "EOF"},
		{"not json", "schema: 1", "invalid character"},
		{"array", "[]", "cannot unmarshal array"},
		{"unknown field", `{"schema":1,"packages":[],"files":[],"extra":true}`, `unknown field "extra"`},
		{"unknown file field", `{"schema":1,"packages":[],"files":[{"name":"a","mode":1}]}`, `unknown field "mode"`},
		{"trailing data", `{"schema":1,"packages":[],"files":[]} {}`, "trailing data"},
		{"wrong type", `{"schema":"1"}`, "cannot unmarshal string"},
		{"input not ints", `{"schema":1,"files":[{"input":[1.5]}]}`, "cannot unmarshal number"},
	}
	for _, tc := range raw {
		t.Run(tc.name, func(t *testing.T) { checkRejected(t, []byte(tc.data), tc.want) })
	}
}

// checkRejected asserts that Parse fails on data with a one-line error
// containing want.
func checkRejected(t *testing.T, data []byte, want string) {
	t.Helper()
	m, err := Parse(data)
	if err == nil {
		t.Fatalf("Parse accepted %s as %+v", data, m)
	}
	msg := err.Error()
	if !strings.Contains(msg, want) || !strings.HasPrefix(msg, "manifest: ") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line starting \"manifest: \" containing %q", msg, want)
	}
}

func TestParseAcceptsMinimal(t *testing.T) {
	m, err := Parse([]byte(`{"schema":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 0 || len(m.Packages) != 0 {
		t.Errorf("got %+v", m)
	}
}

func TestFileUnknown(t *testing.T) {
	_, err := validManifest().File("nope")
	if err == nil || !strings.Contains(err.Error(), `"nope" is not in models/manifest.json (known: lib, det)`) {
		t.Errorf("err = %v", err)
	}
	if _, err := validManifest().Package("pkg-a@0"); err == nil {
		t.Error("Package found an unlisted ref")
	}
}

func TestDefaultDepsDir(t *testing.T) {
	t.Setenv(DepsEnv, "")
	if got := DefaultDepsDir(); got != "build/deps" {
		t.Errorf("unset: %q", got)
	}
	t.Setenv(DepsEnv, "/opt/vigil/deps")
	if got := DefaultDepsDir(); got != "/opt/vigil/deps" {
		t.Errorf("set: %q", got)
	}
}

func TestLocation(t *testing.T) {
	f := File{Dest: "models/a.onnx"}
	if got, want := f.Location("build/deps"), filepath.Join("build", "deps", "models", "a.onnx"); got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}
