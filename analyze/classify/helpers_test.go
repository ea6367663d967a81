package classify_test

import (
	"context"
	"image"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze/classify/dataset"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// quiet is a logger for tests.
var quiet = slog.New(slog.DiscardHandler)

// newRuntime loads the real onnxruntime.
func newRuntime(t testing.TB) *onnx.Runtime {
	t.Helper()
	rt, err := onnx.NewRuntime(filepath.Join(testenv.DepsDir(t), "lib", "libonnxruntime.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	return rt
}

// mobileNet returns the shared test data's int8 MobileNetV2.
func mobileNet(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.TestData(t), "models", "mobilenetv2-12-int8.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clothes scans the shared test data's 4 classes x 30 photos.
func clothes(t testing.TB) dataset.Dataset {
	t.Helper()
	ds, err := dataset.Scan(filepath.Join(testenv.TestData(t), "classify_train"), dataset.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// natsJS starts a real NATS server with JetStream and returns a JetStream context on it.
func natsJS(t testing.TB) jetstream.JetStream {
	t.Helper()
	ctx := context.Background()
	srv := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := bus.Connect(ctx, srv.ClientURL(), "classify-test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// newStore opens the classifier store on a fresh server.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), natsJS(t), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rectOf is the whole image.
func rectOf(m gocv.Mat) image.Rectangle { return image.Rect(0, 0, m.Cols(), m.Rows()) }
