// Package postgres opens the event store in a PostgreSQL database (github.com/jackc/pgx/v5
// through database/sql). Its tables are named vigil_* so they can share a database; put them in
// a schema of their own with search_path in the DSN.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/vigil-video/vigil/sink/eventstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the advisory lock that serialises migrating processes.
const migrationLockKey = 7310504211

// Dialect returns the PostgreSQL dialect of the event store, with its embedded migrations.
func Dialect() eventstore.Dialect {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	return eventstore.Dialect{Name: "postgres", Migrations: sub,
		Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		Lock:        "SELECT pg_advisory_xact_lock(" + strconv.Itoa(migrationLockKey) + ")"}
}

// MaxConns bounds the connections a store opens.
const MaxConns = 8

// OpenDB parses dsn (a postgres:// URL or "host=... dbname=..." keywords, as libpq and pgx
// accept) and returns a pool over it; it does not connect yet.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("eventstore postgres: DSN: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// Open connects to dsn (see OpenDB), sets st.DB and st.Dialect and initialises st (migrations,
// retention), so st's other fields configure the store. On error nothing stays open. The caller
// closes st.
func Open(ctx context.Context, dsn string, st *eventstore.Store) error {
	db, err := OpenDB(dsn)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("eventstore postgres: connect: %w", err)
	}
	st.DB, st.Dialect = db, Dialect()
	if err := st.Initialize(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("eventstore postgres: %w", err)
	}
	return nil
}
