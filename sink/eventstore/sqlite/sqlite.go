// Package sqlite opens the event store in an embedded SQLite database (modernc.org/sqlite: pure
// Go, no cgo). The database is one file (plus its -wal and -shm companions while open) in
// write-ahead-log mode: the UI's queries read while the sink writes.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/vigil-video/vigil/sink/eventstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect returns the SQLite dialect of the event store, with its embedded migrations.
func Dialect() eventstore.Dialect {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	return eventstore.Dialect{Name: "sqlite", Migrations: sub, Placeholder: func(int) string { return "?" }}
}

// BusyTimeoutMS is how long a connection waits for another's write lock before failing.
const BusyTimeoutMS = 10000

// OpenDB opens the SQLite database at path (created if missing; its directory must exist), in
// write-ahead-log mode with synchronous=NORMAL (a committed write survives a crash of the
// process; a power loss may lose the last transactions, never corrupt the file), foreign keys
// on, a busy timeout, and write transactions that take the write lock when they begin (so
// concurrent writers wait instead of failing). ":memory:" opens a private in-memory database
// (one connection).
func OpenDB(path string) (*sql.DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("eventstore sqlite: path %q: want a file path without '?', '#' or a file: prefix", path)
	}
	params := fmt.Sprintf("?_busy_timeout=%d&_foreign_keys=1&_txlock=immediate", BusyTimeoutMS)
	if path != ":memory:" {
		params += "&_journal_mode=WAL&_synchronous=NORMAL"
	}
	db, err := sql.Open("sqlite", path+params)
	if err != nil {
		return nil, fmt.Errorf("eventstore sqlite: %w", err)
	}
	if path == ":memory:" {
		db.SetMaxOpenConns(1) // every connection would get a database of its own
	} else {
		db.SetMaxOpenConns(4)
	}
	return db, nil
}

// Open opens the database at path (see OpenDB), sets st.DB and st.Dialect and initialises st
// (migrations, retention), so st's other fields configure the store. On error nothing stays
// open. The caller closes st.
//
// Several processes may open one file at once: switching a new file to write-ahead logging takes
// a lock that SQLite reports as busy without waiting for the busy timeout, so Open retries a
// busy database with backoff for up to BusyTimeoutMS.
func Open(ctx context.Context, path string, st *eventstore.Store) error {
	deadline := time.Now().Add(BusyTimeoutMS * time.Millisecond)
	wait := 20 * time.Millisecond
	for {
		err := open(ctx, path, st)
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, time.Second)
	}
}

func open(ctx context.Context, path string, st *eventstore.Store) error {
	db, err := OpenDB(path)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("eventstore sqlite: open %s: %w", path, err)
	}
	st.DB, st.Dialect = db, Dialect()
	if err := st.Initialize(ctx); err != nil {
		_ = db.Close()
		st.DB = nil
		return fmt.Errorf("eventstore sqlite: %s: %w", path, err)
	}
	return nil
}

// busy reports whether err is SQLite's "database is locked" (SQLITE_BUSY).
func busy(err error) bool {
	return strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked")
}
