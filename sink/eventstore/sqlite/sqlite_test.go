package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the event store suite on a real SQLite file per test.
func TestConformance(t *testing.T) {
	eventstoretest.Run(t, eventstoretest.Backend{NewDatabase: func(t *testing.T) eventstoretest.Opener {
		path := filepath.Join(t.TempDir(), "events.db")
		return func(ctx context.Context, st *eventstore.Store) error { return Open(ctx, path, st) }
	}})
}

// TestMemory: ":memory:" works (one connection, no WAL).
func TestMemory(t *testing.T) {
	st := &eventstore.Store{PruneInterval: -1}
	if err := Open(context.Background(), ":memory:", st); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.SchemaVersion(context.Background()); err != nil || v != 2 { // 0002_faces
		t.Fatalf("version %d, %v", v, err)
	}
}

func TestBadPaths(t *testing.T) {
	for _, p := range []string{"", "a.db?mode=ro", "file:a.db", filepath.Join(t.TempDir(), "missing", "x.db")} {
		st := &eventstore.Store{PruneInterval: -1}
		if err := Open(context.Background(), p, st); err == nil {
			_ = st.Close()
			t.Errorf("opened %q", p)
		}
	}
}

func BenchmarkStore(b *testing.B) {
	eventstoretest.Bench(b, func(b *testing.B) eventstoretest.Opener {
		path := filepath.Join(b.TempDir(), "events.db")
		return func(ctx context.Context, st *eventstore.Store) error { return Open(ctx, path, st) }
	})
}
