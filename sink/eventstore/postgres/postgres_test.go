package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/eventstore/eventstoretest"
	"github.com/vigil-video/vigil/sink/eventstore/postgres/pgtest"
)

// pg is the package's PostgreSQL server, started once by TestMain (nil with startErr set when
// it could not start).
var pg struct {
	srv *pgtest.Server
	err error
}

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg.srv, pg.err = pgtest.Start(ctx)
	cancel()
	code := m.Run()
	if pg.srv != nil {
		if err := pg.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop postgres:", err)
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// server returns the PostgreSQL server, skipping the test when none is installed.
func server(t *testing.T) *pgtest.Server {
	t.Helper()
	if errors.Is(pg.err, pgtest.ErrUnavailable) {
		t.Skip(pg.err)
	}
	if pg.err != nil {
		t.Fatal(pg.err)
	}
	return pg.srv
}

// TestConformance runs the event store suite on a real PostgreSQL server, one database per test.
func TestConformance(t *testing.T) {
	srv := server(t)
	eventstoretest.Run(t, eventstoretest.Backend{NewDatabase: func(t *testing.T) eventstoretest.Opener {
		dsn := srv.NewDatabase(t)
		return func(ctx context.Context, st *eventstore.Store) error { return Open(ctx, dsn, st) }
	}})
}

// TestBadDSN: a malformed DSN and an unreachable server fail Open with nothing left open.
func TestBadDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://[::1", "postgres://vigil@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"} {
		st := &eventstore.Store{PruneInterval: -1}
		if err := Open(context.Background(), dsn, st); err == nil {
			_ = st.Close()
			t.Errorf("opened %q", dsn)
		}
	}
}

func BenchmarkStore(b *testing.B) {
	if errors.Is(pg.err, pgtest.ErrUnavailable) {
		b.Skip(pg.err)
	}
	if pg.err != nil {
		b.Fatal(pg.err)
	}
	eventstoretest.Bench(b, func(b *testing.B) eventstoretest.Opener {
		dsn := pg.srv.NewDatabase(b)
		return func(ctx context.Context, st *eventstore.Store) error { return Open(ctx, dsn, st) }
	})
}
