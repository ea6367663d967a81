// Package eventstore keeps the history the UI shows: track events (face appeared, recognised,
// left) with a face snapshot each, and a summary of every result, in SQL: SQLite embedded by
// default (package sqlite), PostgreSQL when configured (package postgres). Both run the same
// queries through database/sql; a Dialect gives the differences (placeholders, DDL, locking).
//
// Store is a sink.Sink for results (Write stores a summary) and an EventSink for events
// (WriteEvent, StoreEvent), and answers the UI's queries (Events, Event, Snapshot, Results),
// also over HTTP (API). Consumer feeds it, and other EventSinks, from NATS; snapshot.Ring cuts
// the snapshots from the frames.
//
// Storage is idempotent: an event is stored once per (stream, track id, kind) and a result once
// per (stream, seq, capture time), so the at-least-once delivery of JetStream stores nothing
// twice. Retention removes rows older than MaxAge and the oldest beyond MaxEvents and
// MaxResults, in the background every PruneInterval. Schema migrations are embedded in the
// dialect packages, applied in one transaction at Initialize, and recorded, so running them
// again (or from several processes at once) changes nothing.
//
// Times are stored as Unix nanoseconds (BIGINT), the same in both databases.
//
// The package is pure Go.
package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
)

// Defaults of the Store fields.
const (
	DefaultMaxAge           = 30 * 24 * time.Hour
	DefaultMaxEvents        = 100_000
	DefaultMaxResults       = 1_000_000
	DefaultMaxSnapshotBytes = 1 << 20
	DefaultPruneInterval    = time.Minute
)

// migrationsTable records the applied migrations.
const migrationsTable = "vigil_eventstore_migrations"

// Errors of the Store.
var (
	// ErrNotFound: no event, or no snapshot, with that id.
	ErrNotFound = errors.New("eventstore: not found")
	// ErrInvalid is wrapped by the errors for events, filters and snapshots the store refuses.
	ErrInvalid = errors.New("eventstore: invalid")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("eventstore: closed")
)

// EventSink receives track events, each with its face snapshot (a JPEG, nil when none could be
// cut). Like sink.Sink: WriteEvent is called in arrival order and returns once the event is
// handed on (stored, sent) or failed; the Consumer acknowledges an event only after every
// EventSink took it, and redelivers it otherwise, so an EventSink deduplicates when it must
// not see an event twice (an event is unique by stream, track id and kind). Close releases
// the destination; no WriteEvent follows it. Store, webhook.Sink and jsonl.Writer implement it.
type EventSink interface {
	WriteEvent(ctx context.Context, ev event.Event, snapshot []byte) error
	Close() error
}

// Dialect is what differs between databases.
type Dialect struct {
	// Name names the database in errors ("sqlite", "postgres").
	Name string
	// Migrations holds the schema: files NNNN_description.sql at its root, versions 1, 2, ...
	// without gaps, each statements separated by ";" at the end of a line (lines starting with
	// "--" are comments).
	Migrations fs.FS
	// Placeholder returns the n-th bind parameter (from 1): "?" or "$n".
	Placeholder func(n int) string
	// Lock, when set, runs first in the migration transaction to serialise migrating processes
	// (PostgreSQL: an advisory transaction lock). SQLite's write lock needs none.
	Lock string
}

// Store is the event store. Fill the exported fields, call Initialize, use it from any
// goroutine, Close when done. Fields must not change after Initialize.
type Store struct {
	// DB is the database. Required; Close closes it.
	DB *sql.DB
	// Dialect is the database's dialect. Required (the sqlite and postgres packages set it).
	Dialect Dialect
	// MaxAge removes events and results stored longer ago than this. Default 30 days; negative:
	// no age limit.
	MaxAge time.Duration
	// MaxEvents keeps at most this many events (the newest), with their snapshots. Default
	// 100000; negative: no limit.
	MaxEvents int
	// MaxResults keeps at most this many result summaries (the newest). Default 1000000;
	// negative: no limit.
	MaxResults int
	// MaxSnapshotBytes refuses larger snapshots: the event is stored without one (counted).
	// Default 1 MiB.
	MaxSnapshotBytes int
	// EmptyResults stores summaries of results without faces too. Default false: only results
	// with at least one face (the UI's history of people).
	EmptyResults bool
	// PruneInterval is how often retention runs in the background. Default 1 minute; negative:
	// never (call Prune).
	PruneInterval time.Duration
	// Log receives pruning errors. Default slog.Default().
	Log *slog.Logger

	// Now is the clock of the stored times (stored_at) and of retention. Default time.Now.
	Now func() time.Time

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	closed bool
	stats  Stats

	faces faceIndex // search by face (faces.go)
}

// Stats counts what a Store did.
type Stats struct {
	// Events counts events stored; Duplicates the events already stored (redeliveries).
	Events, Duplicates uint64
	// Snapshots counts snapshots stored; SnapshotsRefused those not stored (too large, not a JPEG).
	Snapshots, SnapshotsRefused uint64
	// Results counts result summaries stored (duplicates included; empty results skipped are not).
	Results uint64
	// PrunedEvents and PrunedResults count rows removed by retention.
	PrunedEvents, PrunedResults uint64
	// Errors counts failed writes and prunes.
	Errors uint64
}

// Initialize validates the configuration, applies the schema migrations and starts background
// pruning.
func (s *Store) Initialize(ctx context.Context) error {
	if s.DB == nil || s.Dialect.Migrations == nil || s.Dialect.Placeholder == nil {
		return errors.New("eventstore: DB and Dialect are required")
	}
	if s.MaxAge == 0 {
		s.MaxAge = DefaultMaxAge
	}
	if s.MaxEvents == 0 {
		s.MaxEvents = DefaultMaxEvents
	}
	if s.MaxResults == 0 {
		s.MaxResults = DefaultMaxResults
	}
	if s.MaxSnapshotBytes <= 0 {
		s.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if s.PruneInterval == 0 {
		s.PruneInterval = DefaultPruneInterval
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if s.PruneInterval > 0 {
		pctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.pruneLoop(pctx)
	}
	return nil
}

// migration is one schema file.
type migration struct {
	version int
	name    string
	stmts   []string
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("eventstore: migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("eventstore: migration %s: want NNNN_description.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("eventstore: migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), stmts: SplitStatements(string(b))})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("eventstore: migration %s: version %d, want %d (no gaps, no duplicates)", m.name, m.version, i+1)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("eventstore: no migrations")
	}
	return out, nil
}

// SplitStatements splits a migration file into statements: text up to a ";" that ends a line
// (after trimming spaces), without lines that start with "--". Empty statements are dropped.
func SplitStatements(sqlText string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if st := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); strings.TrimSpace(st) != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// migrate applies the migrations not yet recorded, all in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	migs, err := loadMigrations(s.Dialect.Migrations)
	if err != nil {
		return err
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("eventstore: %s: migrate: %w", s.Dialect.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if s.Dialect.Lock != "" {
		if _, err := tx.ExecContext(ctx, s.Dialect.Lock); err != nil {
			return fmt.Errorf("eventstore: %s: migration lock: %w", s.Dialect.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+migrationsTable+
		" (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("eventstore: %s: migrate: %w", s.Dialect.Name, err)
	}
	var have sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT MAX(version) FROM "+migrationsTable).Scan(&have); err != nil {
		return fmt.Errorf("eventstore: %s: migrate: %w", s.Dialect.Name, err)
	}
	if int(have.Int64) > len(migs) {
		return fmt.Errorf("eventstore: %s: the database's schema is version %d, newer than this build's %d: upgrade Vigil",
			s.Dialect.Name, have.Int64, len(migs))
	}
	for _, m := range migs[have.Int64:] {
		for _, st := range m.stmts {
			if _, err := tx.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("eventstore: %s: migration %s: %w", s.Dialect.Name, m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.bind("INSERT INTO "+migrationsTable+" (version, name, applied_ns) VALUES (?, ?, ?)"),
			m.version, m.name, s.Now().UnixNano()); err != nil {
			return fmt.Errorf("eventstore: %s: record migration %s: %w", s.Dialect.Name, m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("eventstore: %s: migrate: %w", s.Dialect.Name, err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.DB.QueryRowContext(ctx, "SELECT MAX(version) FROM "+migrationsTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("eventstore: %w", err)
	}
	return int(v.Int64), nil
}

// bind replaces each "?" of q with the dialect's placeholder. The queries of this package hold
// no "?" inside literals.
func (s *Store) bind(q string) string {
	if s.Dialect.Placeholder(1) == "?" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString(s.Dialect.Placeholder(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ns converts a time to stored Unix nanoseconds; the zero time is 0.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNS is ns's inverse, in UTC.
func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// MaxTrackIDLen bounds the track ids stored.
const MaxTrackIDLen = 128

// validEvent checks what the store relies on (ParseEvent's checks, for events built in code).
func validEvent(ev event.Event) error {
	if err := frame.ValidateStream(ev.Stream); err != nil {
		return fmt.Errorf("%w: event: %w", ErrInvalid, err)
	}
	switch ev.Kind {
	case event.KindAppeared, event.KindRecognized, event.KindLeft:
	default:
		return fmt.Errorf("%w: event kind %q", ErrInvalid, ev.Kind)
	}
	if ev.TrackID == "" || len(ev.TrackID) > MaxTrackIDLen {
		return fmt.Errorf("%w: track id of %d bytes (1..%d)", ErrInvalid, len(ev.TrackID), MaxTrackIDLen)
	}
	return nil
}

// IsJPEG reports whether b starts like a JPEG (SOI marker).
func IsJPEG(b []byte) bool { return len(b) >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff }

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Store) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// StoreEvent stores ev with its snapshot (a JPEG; nil for none) and returns the event's id. An
// event already stored (same stream, track id and kind) is not stored again: its id is returned
// (and its snapshot added if it had none). A snapshot that is not a JPEG or is larger than
// MaxSnapshotBytes is left out (counted), the event stored without it.
func (s *Store) StoreEvent(ctx context.Context, ev event.Event, snapshot []byte) (int64, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	if err := validEvent(ev); err != nil {
		return 0, err
	}
	if len(snapshot) > 0 && (len(snapshot) > s.MaxSnapshotBytes || !IsJPEG(snapshot)) {
		s.count(func(st *Stats) { st.SnapshotsRefused++ })
		snapshot = nil
	}
	id, dup, err := s.storeEvent(ctx, ev, snapshot)
	if err != nil {
		s.count(func(st *Stats) { st.Errors++ })
		return 0, fmt.Errorf("eventstore: %s: store event: %w", s.Dialect.Name, err)
	}
	s.count(func(st *Stats) {
		if dup {
			st.Duplicates++
		} else {
			st.Events++
		}
		if len(snapshot) > 0 && !dup {
			st.Snapshots++
		}
	})
	return id, nil
}

func (s *Store) storeEvent(ctx context.Context, ev event.Event, snapshot []byte) (id int64, dup bool, err error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback() }()
	var identity sql.NullString
	var similarity sql.NullFloat64
	if ev.Identity != nil {
		identity = sql.NullString{String: ev.Identity.Name, Valid: true}
		similarity = sql.NullFloat64{Float64: float64(ev.Identity.Similarity), Valid: true}
	}
	b := ev.Crop.Box
	err = tx.QueryRowContext(ctx, s.bind(`INSERT INTO vigil_events (stream, kind, track_id, seq, captured_ns, at_ns,
		identity, similarity, first_seen_ns, last_seen_ns, frames, reason,
		crop_seq, crop_captured_ns, box_x1, box_y1, box_x2, box_y2, crop_width, crop_height, stored_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (stream, track_id, kind) DO NOTHING RETURNING id`),
		ev.Stream, ev.Kind, ev.TrackID, int64(ev.Seq), ns(ev.CapturedAt), ns(ev.At),
		identity, similarity, ns(ev.FirstSeen), ns(ev.LastSeen), ev.Frames, ev.Reason,
		int64(ev.Crop.Seq), ns(ev.Crop.CapturedAt), float64(b.X1), float64(b.Y1), float64(b.X2), float64(b.Y2),
		ev.Crop.Width, ev.Crop.Height, s.Now().UnixNano()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		dup = true
		err = tx.QueryRowContext(ctx, s.bind("SELECT id FROM vigil_events WHERE stream = ? AND track_id = ? AND kind = ?"),
			ev.Stream, ev.TrackID, ev.Kind).Scan(&id)
	}
	if err != nil {
		return 0, false, err
	}
	if len(snapshot) > 0 {
		if _, err := tx.ExecContext(ctx, s.bind("INSERT INTO vigil_snapshots (event_id, jpeg) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING"),
			id, snapshot); err != nil {
			return 0, false, err
		}
	}
	enc, err := s.insertFace(ctx, tx, id, ev)
	if err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	if enc != nil {
		s.faceAdded(id, ev, enc)
	}
	return id, dup, nil
}

// WriteEvent stores ev (EventSink): StoreEvent without the id.
func (s *Store) WriteEvent(ctx context.Context, ev event.Event, snapshot []byte) error {
	_, err := s.StoreEvent(ctx, ev, snapshot)
	return err
}

// Write stores a summary of r (sink.Sink): stream, seq, times, size, face count and the
// identities recognised. Results without faces are skipped unless EmptyResults. A result
// already stored (same stream, seq and capture time) is not stored again.
func (s *Store) Write(ctx context.Context, r result.Result) error {
	if s.isClosed() {
		return ErrClosed
	}
	if len(r.Faces) == 0 && !s.EmptyResults {
		return nil
	}
	if err := frame.ValidateStream(r.Stream); err != nil {
		return fmt.Errorf("%w: result: %w", ErrInvalid, err)
	}
	ids := identities(r)
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("eventstore: %w", err)
	}
	_, err = s.DB.ExecContext(ctx, s.bind(`INSERT INTO vigil_results (stream, seq, captured_ns, analyzed_ns, latency_ms,
		width, height, faces, identified, identities, stored_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (stream, seq, captured_ns) DO NOTHING`),
		r.Stream, int64(r.Seq), ns(r.CapturedAt), ns(r.AnalyzedAt), r.LatencyMS, r.Width, r.Height,
		len(r.Faces), identified(r), string(idsJSON), s.Now().UnixNano())
	if err != nil {
		s.count(func(st *Stats) { st.Errors++ })
		return fmt.Errorf("eventstore: %s: store result: %w", s.Dialect.Name, err)
	}
	s.count(func(st *Stats) { st.Results++ })
	return nil
}

// identities returns the distinct identity names in r, in face order.
func identities(r result.Result) []string {
	out := []string{}
	for _, f := range r.Faces {
		if f.Identity != nil && f.Identity.Name != "" && !slices.Contains(out, f.Identity.Name) {
			out = append(out, f.Identity.Name)
		}
	}
	return out
}

func identified(r result.Result) int {
	n := 0
	for _, f := range r.Faces {
		if f.Identity != nil && f.Identity.Name != "" {
			n++
		}
	}
	return n
}

// Pruned counts the rows one Prune removed.
type Pruned struct {
	// Events (with their snapshots) and Results count the rows removed.
	Events, Results int64
}

// Prune applies retention now: it removes the events (with their snapshots) and results stored
// more than MaxAge ago, then the oldest beyond MaxEvents and MaxResults.
func (s *Store) Prune(ctx context.Context) (Pruned, error) {
	var p Pruned
	if s.isClosed() {
		return p, ErrClosed
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return p, s.pruneErr(err)
	}
	defer func() { _ = tx.Rollback() }()
	exec := func(q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, s.bind(q), args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if s.MaxAge > 0 {
		cutoff := s.Now().Add(-s.MaxAge).UnixNano()
		if _, err := exec("DELETE FROM vigil_snapshots WHERE event_id IN (SELECT id FROM vigil_events WHERE stored_ns < ?)", cutoff); err != nil {
			return p, s.pruneErr(err)
		}
		n, err := exec("DELETE FROM vigil_events WHERE stored_ns < ?", cutoff)
		if err != nil {
			return p, s.pruneErr(err)
		}
		p.Events += n
		if n, err = exec("DELETE FROM vigil_results WHERE stored_ns < ?", cutoff); err != nil {
			return p, s.pruneErr(err)
		}
		p.Results += n
	}
	// boundary returns the newest id beyond the newest keep rows of table, if any.
	boundary := func(table string, keep int) (int64, bool, error) {
		var id int64
		err := tx.QueryRowContext(ctx, s.bind("SELECT id FROM "+table+" ORDER BY id DESC LIMIT 1 OFFSET ?"), keep).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return id, err == nil, err
	}
	if s.MaxEvents > 0 {
		b, ok, err := boundary("vigil_events", s.MaxEvents)
		if err != nil {
			return p, s.pruneErr(err)
		}
		if ok {
			if _, err := exec("DELETE FROM vigil_snapshots WHERE event_id <= ?", b); err != nil {
				return p, s.pruneErr(err)
			}
			n, err := exec("DELETE FROM vigil_events WHERE id <= ?", b)
			if err != nil {
				return p, s.pruneErr(err)
			}
			p.Events += n
		}
	}
	if s.MaxResults > 0 {
		b, ok, err := boundary("vigil_results", s.MaxResults)
		if err != nil {
			return p, s.pruneErr(err)
		}
		if ok {
			n, err := exec("DELETE FROM vigil_results WHERE id <= ?", b)
			if err != nil {
				return p, s.pruneErr(err)
			}
			p.Results += n
		}
	}
	if p.Events > 0 { // embeddings of removed events (where foreign keys did not cascade)
		if _, err := exec("DELETE FROM vigil_faces WHERE NOT EXISTS (SELECT 1 FROM vigil_events e WHERE e.id = vigil_faces.event_id)"); err != nil {
			return p, s.pruneErr(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Pruned{}, s.pruneErr(err)
	}
	s.count(func(st *Stats) { st.PrunedEvents += uint64(p.Events); st.PrunedResults += uint64(p.Results) })
	if p.Events > 0 {
		s.facesPruned()
	}
	return p, nil
}

func (s *Store) pruneErr(err error) error {
	s.count(func(st *Stats) { st.Errors++ })
	return fmt.Errorf("eventstore: %s: prune: %w", s.Dialect.Name, err)
}

func (s *Store) pruneLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, max(s.PruneInterval, 30*time.Second))
			if _, err := s.Prune(pctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				s.Log.Warn("event store retention failed", "err", err)
			}
			cancel()
		}
	}
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Delivered returns the events and result summaries stored (for vigil_sink_delivered_total).
func (s *Store) Delivered() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Events + s.stats.Results
}

// Close stops background pruning, waits for it, and closes DB. Later calls fail with ErrClosed.
// Safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.DB == nil {
		return nil
	}
	if err := s.DB.Close(); err != nil {
		return fmt.Errorf("eventstore: close: %w", err)
	}
	return nil
}
