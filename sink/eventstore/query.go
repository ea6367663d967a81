package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
)

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	// Stream, Kind, Identity and TrackID select by equality.
	Stream, Kind, Identity, TrackID string
	// Identified selects only events with an identity.
	Identified bool
	// Since and Until bound the capture time of the frame that decided the event:
	// Since <= t < Until.
	Since, Until time.Time
	// Before selects events with an id below it: pass the last id of a page for the next one.
	Before int64
	// Limit bounds the answer. Default DefaultLimit (100), at most MaxLimit (1000).
	Limit int
}

// Validate checks the filter's values.
func (f EventFilter) Validate() error {
	if f.Stream != "" {
		if err := frame.ValidateStream(f.Stream); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	switch f.Kind {
	case "", event.KindAppeared, event.KindRecognized, event.KindLeft:
	default:
		return fmt.Errorf("%w: kind %q (want %s, %s or %s)", ErrInvalid, f.Kind, event.KindAppeared, event.KindRecognized, event.KindLeft)
	}
	if len(f.Identity) > 256 || len(f.TrackID) > MaxTrackIDLen {
		return fmt.Errorf("%w: identity or track id too long", ErrInvalid)
	}
	if f.Limit < 0 || f.Limit > MaxLimit || f.Before < 0 {
		return fmt.Errorf("%w: limit %d (0..%d) or before %d", ErrInvalid, f.Limit, MaxLimit, f.Before)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("%w: until %s is not after since %s", ErrInvalid, f.Until, f.Since)
	}
	return nil
}

// StoredEvent is an event as stored. Its UnknownID is the unknown person its track is filed
// under now (SetUnknown, RelabelUnknown), for every event of the track; "" when none.
type StoredEvent struct {
	// ID identifies the event in the store; ids increase in storage order.
	ID int64 `json:"id"`
	event.Event
	// HasSnapshot tells whether Snapshot(ID) has a picture.
	HasSnapshot bool `json:"has_snapshot"`
	// StoredAt is when the store received the event.
	StoredAt time.Time `json:"stored_at"`
}

const eventColumns = `id, stream, kind, track_id, seq, captured_ns, at_ns, identity, similarity,
	first_seen_ns, last_seen_ns, frames, reason, crop_seq, crop_captured_ns,
	box_x1, box_y1, box_x2, box_y2, crop_width, crop_height, stored_ns,
	CASE WHEN EXISTS (SELECT 1 FROM vigil_snapshots s WHERE s.event_id = vigil_events.id) THEN 1 ELSE 0 END,
	COALESCE((SELECT f.unknown_id FROM vigil_faces f JOIN vigil_events t ON t.id = f.event_id
		WHERE t.stream = vigil_events.stream AND t.track_id = vigil_events.track_id AND f.unknown_id <> '' LIMIT 1), '')`

func scanEvent(sc interface{ Scan(...any) error }) (StoredEvent, error) {
	var e StoredEvent
	var seq, cropSeq, captured, at, first, last, cropCaptured, stored int64
	var identity sql.NullString
	var similarity sql.NullFloat64
	var x1, y1, x2, y2 float64
	var snap int
	err := sc.Scan(&e.ID, &e.Stream, &e.Kind, &e.TrackID, &seq, &captured, &at, &identity, &similarity,
		&first, &last, &e.Frames, &e.Reason, &cropSeq, &cropCaptured,
		&x1, &y1, &x2, &y2, &e.Crop.Width, &e.Crop.Height, &stored, &snap, &e.UnknownID)
	if err != nil {
		return StoredEvent{}, err
	}
	e.Schema = event.EventSchema
	e.Seq, e.CapturedAt, e.At = uint64(seq), fromNS(captured), fromNS(at)
	if identity.Valid {
		e.Identity = &result.Identity{Name: identity.String, Similarity: float32(similarity.Float64)}
	}
	e.FirstSeen, e.LastSeen = fromNS(first), fromNS(last)
	e.Crop.Stream, e.Crop.Seq, e.Crop.CapturedAt = e.Stream, uint64(cropSeq), fromNS(cropCaptured)
	e.Crop.Box = result.Box{X1: float32(x1), Y1: float32(y1), X2: float32(x2), Y2: float32(y2)}
	e.StoredAt = fromNS(stored)
	e.HasSnapshot = snap != 0
	return e, nil
}

// where builds a WHERE clause from conditions with "?" placeholders.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, arg)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func limit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// Events returns the events f selects, newest (highest id) first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]StoredEvent, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var w where
	if f.Stream != "" {
		w.add("stream = ?", f.Stream)
	}
	if f.Kind != "" {
		w.add("kind = ?", f.Kind)
	}
	if f.Identity != "" {
		w.add("identity = ?", f.Identity)
	}
	if f.Identified {
		w.conds = append(w.conds, "identity IS NOT NULL")
	}
	if f.TrackID != "" {
		w.add("track_id = ?", f.TrackID)
	}
	if !f.Since.IsZero() {
		w.add("captured_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("captured_ns < ?", f.Until.UnixNano())
	}
	if f.Before > 0 {
		w.add("id < ?", f.Before)
	}
	q := "SELECT " + eventColumns + " FROM vigil_events" + w.String() + " ORDER BY id DESC LIMIT ?"
	rows, err := s.DB.QueryContext(ctx, s.bind(q), append(w.args, limit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %s: events: %w", s.Dialect.Name, err)
	}
	defer rows.Close()
	out := []StoredEvent{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("eventstore: %s: events: %w", s.Dialect.Name, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: %s: events: %w", s.Dialect.Name, err)
	}
	return out, nil
}

// Event returns the event with this id, or ErrNotFound.
func (s *Store) Event(ctx context.Context, id int64) (StoredEvent, error) {
	if s.isClosed() {
		return StoredEvent{}, ErrClosed
	}
	e, err := scanEvent(s.DB.QueryRowContext(ctx, s.bind("SELECT "+eventColumns+" FROM vigil_events WHERE id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return StoredEvent{}, fmt.Errorf("%w: event %d", ErrNotFound, id)
	}
	if err != nil {
		return StoredEvent{}, fmt.Errorf("eventstore: %s: event %d: %w", s.Dialect.Name, id, err)
	}
	return e, nil
}

// Snapshot returns the JPEG face snapshot of event id, or ErrNotFound when the event has none
// (or does not exist).
func (s *Store) Snapshot(ctx context.Context, id int64) ([]byte, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	var b []byte
	err := s.DB.QueryRowContext(ctx, s.bind("SELECT jpeg FROM vigil_snapshots WHERE event_id = ?"), id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: snapshot of event %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: %s: snapshot %d: %w", s.Dialect.Name, id, err)
	}
	return b, nil
}

// ResultFilter selects result summaries. Zero fields select everything.
type ResultFilter struct {
	// Stream selects one stream.
	Stream string
	// Identified selects results with at least one recognised face.
	Identified bool
	// Since and Until bound the capture time: Since <= t < Until.
	Since, Until time.Time
	// Before selects summaries with an id below it (paging).
	Before int64
	// Limit bounds the answer. Default 100, at most 1000.
	Limit int
}

// Validate checks the filter's values.
func (f ResultFilter) Validate() error {
	return EventFilter{Stream: f.Stream, Since: f.Since, Until: f.Until, Before: f.Before, Limit: f.Limit}.Validate()
}

// ResultSummary is what the store keeps of a result.
type ResultSummary struct {
	// ID identifies the summary in the store; ids increase in storage order.
	ID int64 `json:"id"`
	// Stream, Seq, CapturedAt, AnalyzedAt, LatencyMS, Width and Height are the result's fields
	// of the same names (pkg/result).
	Stream     string    `json:"stream"`
	Seq        uint64    `json:"seq"`
	CapturedAt time.Time `json:"captured_at"`
	AnalyzedAt time.Time `json:"analyzed_at"`
	LatencyMS  float64   `json:"latency_ms"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	// Faces counts the result's faces; Identified those with an identity.
	Faces      int `json:"faces"`
	Identified int `json:"identified"`
	// Identities are the distinct identity names, in face order.
	Identities []string `json:"identities"`
	// StoredAt is when the store received the result.
	StoredAt time.Time `json:"stored_at"`
}

// Results returns the summaries f selects, newest first.
func (s *Store) Results(ctx context.Context, f ResultFilter) ([]ResultSummary, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var w where
	if f.Stream != "" {
		w.add("stream = ?", f.Stream)
	}
	if f.Identified {
		w.conds = append(w.conds, "identified > 0")
	}
	if !f.Since.IsZero() {
		w.add("captured_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("captured_ns < ?", f.Until.UnixNano())
	}
	if f.Before > 0 {
		w.add("id < ?", f.Before)
	}
	q := `SELECT id, stream, seq, captured_ns, analyzed_ns, latency_ms, width, height, faces, identified,
		identities, stored_ns FROM vigil_results` + w.String() + " ORDER BY id DESC LIMIT ?"
	rows, err := s.DB.QueryContext(ctx, s.bind(q), append(w.args, limit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %s: results: %w", s.Dialect.Name, err)
	}
	defer rows.Close()
	out := []ResultSummary{}
	for rows.Next() {
		var r ResultSummary
		var seq, captured, analyzed, stored int64
		var ids string
		if err := rows.Scan(&r.ID, &r.Stream, &seq, &captured, &analyzed, &r.LatencyMS, &r.Width, &r.Height,
			&r.Faces, &r.Identified, &ids, &stored); err != nil {
			return nil, fmt.Errorf("eventstore: %s: results: %w", s.Dialect.Name, err)
		}
		r.Seq, r.CapturedAt, r.AnalyzedAt, r.StoredAt = uint64(seq), fromNS(captured), fromNS(analyzed), fromNS(stored)
		if err := json.Unmarshal([]byte(ids), &r.Identities); err != nil || r.Identities == nil {
			r.Identities = []string{}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: %s: results: %w", s.Dialect.Name, err)
	}
	return out, nil
}
