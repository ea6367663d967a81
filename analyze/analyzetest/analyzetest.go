// Package analyzetest gives other packages' tests the real face models: onnxruntime and the
// models `make setup` fetched, loaded once per test and closed when it ends. Only tests import it
// (the analyze package's own tests keep their copy: they cannot import a package importing
// analyze).
package analyzetest

import (
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// ModelSet loads the manifest's models through the real onnxruntime (one intra-op thread per
// session), failing the test when `make setup` has not run. Sessions and the runtime close in
// the test's cleanup.
func ModelSet(t testing.TB) *analyze.ModelSet {
	t.Helper()
	deps := testenv.DepsDir(t)
	rt, err := onnx.NewRuntime(filepath.Join(deps, "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	man, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	ms := analyze.NewModelSet(rt, man, deps, onnx.SessionOptions{IntraOpThreads: 1})
	t.Cleanup(func() {
		if err := ms.Close(); err != nil {
			t.Error(err)
		}
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	return ms
}
