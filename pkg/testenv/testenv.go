// Package testenv locates what Vigil's tests need outside the repository (the shared test data,
// the fetched models and libraries) and guards every test binary against leaked goroutines and
// gocv Mats. Only tests import it.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SkipLogEnv names the environment variable holding a file to which TestData appends one line
// per test it skips ("<package test binary> <test name>"), so that `make test` can say how many
// tests the missing shared data skipped. Unset: nothing is written.
const SkipLogEnv = "VIGIL_SKIPLOG"

// TestData returns the shared test data directory: $VIGIL_TESTDATA, else ../shared/testdata
// beside the repository. It skips the test, saying why, when the directory is absent (and notes
// the skip in $VIGIL_SKIPLOG when set).
//
// Call it first in a test that needs the data, before the test starts anything (a server, a
// model, a goroutine): a test skipped halfway leaves what it started to its cleanups, and
// TestSkipsComeFirst checks every test in the module keeps to this.
func TestData(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VIGIL_TESTDATA")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared", "testdata")
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		noteSkip(t)
		t.Skipf("shared test data not found at %s (set VIGIL_TESTDATA): %v", dir, err)
	}
	return dir
}

// NeedsTestData skips the test now when the shared test data is absent, as TestData does. Call
// it first in a test whose helpers read the data only later, after they have started something.
func NeedsTestData(t testing.TB) {
	t.Helper()
	TestData(t)
}

// noteSkip appends the test's name to the file named by $VIGIL_SKIPLOG, if any. One short
// O_APPEND write per line, so test binaries running in parallel do not interleave lines.
func noteSkip(t testing.TB) {
	path := os.Getenv(SkipLogEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Logf("%s: %v", SkipLogEnv, err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s\n", filepath.Base(os.Args[0]), t.Name()); err != nil {
		t.Logf("%s: %v", SkipLogEnv, err)
	}
}

// DepsDir returns the directory `make setup` fills with models and libraries: $VIGIL_DEPS, else
// build/deps in the repository. It fails the test when the directory is absent: the Makefile's
// test target runs setup first, so a missing directory is a broken setup, not a reason to skip.
func DepsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VIGIL_DEPS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "build", "deps")
	}
	if _, err := os.Stat(filepath.Join(dir, "models")); err != nil {
		t.Fatalf("models not found under %s: run \"make setup\" (or set VIGIL_DEPS): %v", dir, err)
	}
	return dir
}

// Main runs the package's tests, then fails the binary if goroutines were left running or, when
// built with -tags matprofile, if any gocv Mat was not closed. Use it as
// `func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }`.
func Main(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goroutines leaked: %v\n", err)
		return 1
	}
	if msg := unclosedMats(); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	return 0
}
