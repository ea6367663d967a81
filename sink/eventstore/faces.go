package eventstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/sink/eventstore/facesearch"
)

// syncLookback is how far below the highest loaded event id a sync of the search index looks
// again: PostgreSQL may commit ids out of order across writers.
const syncLookback = 1024

// faceIndex is a Store's search index over vigil_faces, loaded on the first search and brought
// up to date before each (rows other processes added), so a store that only writes never holds
// it.
type faceIndex struct {
	mu        sync.Mutex // serialises loading and syncing
	idx       *facesearch.Index
	synced    int64 // highest event id loaded
	reconcile bool  // rows were deleted (retention): drop what the index holds beyond them
}

// insertFace stores the embedding a face.left event carries, in the event's transaction, and
// returns its encoded form (nil when the event carries none or it does not encode).
func (s *Store) insertFace(ctx context.Context, tx *sql.Tx, eventID int64, ev event.Event) ([]byte, error) {
	if ev.Kind != event.KindLeft || len(ev.Embedding) == 0 {
		return nil, nil
	}
	enc, err := facesearch.Encode(ev.Embedding)
	if err != nil {
		s.Log.Warn("event store: not keeping a track's embedding", "stream", ev.Stream, "track", ev.TrackID, "err", err)
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, s.bind("INSERT INTO vigil_faces (event_id, embedding) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING"),
		eventID, enc); err != nil {
		return nil, err
	}
	return enc, nil
}

// faceAdded puts a stored embedding into the search index when it is loaded.
func (s *Store) faceAdded(eventID int64, ev event.Event, enc []byte) {
	s.faces.mu.Lock()
	defer s.faces.mu.Unlock()
	if s.faces.idx != nil {
		_ = s.faces.idx.Add(eventID, facesearch.Meta{Stream: ev.Stream, FirstSeen: ns(ev.FirstSeen), LastSeen: ns(ev.LastSeen)}, enc)
	}
}

// searchIndex loads the index, or brings it up to date, and returns it.
func (s *Store) searchIndex(ctx context.Context) (*facesearch.Index, error) {
	s.faces.mu.Lock()
	defer s.faces.mu.Unlock()
	fi := &s.faces
	from := int64(0)
	if fi.idx == nil {
		fi.idx = facesearch.New()
	} else {
		from = max(fi.synced-syncLookback, 0)
	}
	rows, err := s.DB.QueryContext(ctx, s.bind(`SELECT f.event_id, e.stream, e.first_seen_ns, e.last_seen_ns, f.embedding
		FROM vigil_faces f JOIN vigil_events e ON e.id = f.event_id WHERE f.event_id > ? ORDER BY f.event_id`), from)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, first, last int64
		var stream string
		var enc []byte
		if err := rows.Scan(&id, &stream, &first, &last, &enc); err != nil {
			return nil, err
		}
		if err := fi.idx.Add(id, facesearch.Meta{Stream: stream, FirstSeen: first, LastSeen: last}, enc); err != nil {
			s.Log.Warn("event store: skipping a stored embedding", "event", id, "err", err)
		}
		fi.synced = max(fi.synced, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if fi.reconcile {
		if err := s.reconcileFaces(ctx, fi.idx); err != nil {
			return nil, err
		}
		fi.reconcile = false
	}
	return fi.idx, nil
}

// reconcileFaces drops from idx the sightings no longer stored.
func (s *Store) reconcileFaces(ctx context.Context, idx *facesearch.Index) error {
	rows, err := s.DB.QueryContext(ctx, "SELECT event_id FROM vigil_faces")
	if err != nil {
		return err
	}
	defer rows.Close()
	keep := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		keep[id] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range idx.IDs() {
		if !keep[id] {
			idx.Remove(id)
		}
	}
	return nil
}

// facesPruned marks the index for reconciliation after retention removed events.
func (s *Store) facesPruned() {
	s.faces.mu.Lock()
	s.faces.reconcile = true
	s.faces.mu.Unlock()
}

// Search limits.
const (
	// DefaultSearchLimit is the sightings a search returns by default.
	DefaultSearchLimit = 50
	// MaxSearchVectors bounds the query embeddings of one search (an identity's photos).
	MaxSearchVectors = 64
)

// FaceQuery is a search by face.
type FaceQuery struct {
	// Vectors are the query embeddings (a photo's, or an identity's several): a sighting's
	// similarity is its highest to any of them. At least one; at most MaxSearchVectors.
	Vectors [][]float32
	// MinSimilarity is the cosine similarity from which a sighting matches. Required (-1..1).
	MinSimilarity float32
	// Limit bounds the sightings. Default DefaultSearchLimit, at most MaxLimit.
	Limit int
	// Stream, when set, keeps that stream's sightings.
	Stream string
	// Since and Until keep the sightings seen within [Since, Until) (zero: open).
	Since, Until time.Time
	// ExcludeEvent leaves out the sighting of that face.left event (a search by that track).
	ExcludeEvent int64
}

// Validate checks the query's values.
func (q FaceQuery) Validate() error {
	if len(q.Vectors) == 0 || len(q.Vectors) > MaxSearchVectors {
		return fmt.Errorf("%w: %d query embeddings (1..%d)", ErrInvalid, len(q.Vectors), MaxSearchVectors)
	}
	if !(q.MinSimilarity >= -1 && q.MinSimilarity <= 1) {
		return fmt.Errorf("%w: min_similarity %v outside -1..1", ErrInvalid, q.MinSimilarity)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return fmt.Errorf("%w: limit %d (1..%d)", ErrInvalid, q.Limit, MaxLimit)
	}
	if q.Stream != "" {
		if err := frame.ValidateStream(q.Stream); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return fmt.Errorf("%w: until %s is not after since %s", ErrInvalid, q.Until, q.Since)
	}
	return nil
}

// Sighting is a stored track found by a search by face.
type Sighting struct {
	// EventID is the track's face.left event.
	EventID int64  `json:"event_id"`
	Stream  string `json:"stream"`
	TrackID string `json:"track_id"`
	// Identity is the name the track was recognised as; "" when none.
	Identity string `json:"identity"`
	// UnknownID is the unknown person the track was filed under; "" when none.
	UnknownID string    `json:"unknown_id"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Similarity is the cosine similarity of the track's embedding to the query.
	Similarity float32 `json:"similarity"`
	// Snapshot is the path of the track's best snapshot (a face.recognized, face.left or
	// face.appeared event's, in that order); "" when none was stored.
	Snapshot string `json:"snapshot"`
}

// SearchFaces returns the stored tracks whose embedding is at least q.MinSimilarity similar to
// one of q.Vectors, most similar first. Sightings of tracks that never carried an embedding
// (face.left without one) cannot be found.
func (s *Store) SearchFaces(ctx context.Context, q FaceQuery) ([]Sighting, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	hits, err := s.faceHits(ctx, q)
	if err != nil {
		return nil, err
	}
	out := []Sighting{}
	lim := q.Limit
	if lim == 0 {
		lim = DefaultSearchLimit
	}
	for _, h := range hits {
		if len(out) == lim {
			break
		}
		sg, err := s.sighting(ctx, h.ID)
		if errors.Is(err, ErrNotFound) {
			s.faces.mu.Lock()
			if s.faces.idx != nil {
				s.faces.idx.Remove(h.ID) // deleted by another process
			}
			s.faces.mu.Unlock()
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("eventstore: %s: search: %w", s.Dialect.Name, err)
		}
		sg.Similarity = h.Similarity
		out = append(out, sg)
	}
	return out, nil
}

// faceHits searches the index with every query vector and keeps each sighting's best.
func (s *Store) faceHits(ctx context.Context, q FaceQuery) ([]facesearch.Hit, error) {
	idx, err := s.searchIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %s: load the search index: %w", s.Dialect.Name, err)
	}
	best := map[int64]float32{}
	for _, v := range q.Vectors {
		hits, err := idx.Search(facesearch.Query{Vector: v, MinSimilarity: q.MinSimilarity, Stream: q.Stream,
			Since: ns(q.Since), Until: ns(q.Until)})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		for _, h := range hits {
			if h.ID == q.ExcludeEvent {
				continue
			}
			if old, ok := best[h.ID]; !ok || h.Similarity > old {
				best[h.ID] = h.Similarity
			}
		}
	}
	out := make([]facesearch.Hit, 0, len(best))
	for id, sim := range best {
		out = append(out, facesearch.Hit{ID: id, Similarity: sim})
	}
	slices.SortFunc(out, func(a, b facesearch.Hit) int {
		switch {
		case a.Similarity > b.Similarity:
			return -1
		case a.Similarity < b.Similarity:
			return 1
		}
		return int(min(max(a.ID-b.ID, -1), 1))
	})
	return out, nil
}

// sighting reads the stored track of face.left event id.
func (s *Store) sighting(ctx context.Context, id int64) (Sighting, error) {
	var sg Sighting
	var identity, unknown sql.NullString
	var first, last int64
	err := s.DB.QueryRowContext(ctx, s.bind(`SELECT e.stream, e.track_id, e.identity, f.unknown_id, e.first_seen_ns, e.last_seen_ns
		FROM vigil_events e JOIN vigil_faces f ON f.event_id = e.id WHERE e.id = ?`), id).
		Scan(&sg.Stream, &sg.TrackID, &identity, &unknown, &first, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return sg, ErrNotFound
	}
	if err != nil {
		return sg, err
	}
	sg.EventID, sg.Identity, sg.UnknownID, sg.FirstSeen, sg.LastSeen = id, identity.String, unknown.String, fromNS(first), fromNS(last)
	sg.Snapshot, err = s.TrackSnapshot(ctx, sg.Stream, sg.TrackID)
	return sg, err
}

// TrackEmbedding returns the stored embedding of a track (its face.left event's) and that
// event's id. With stream "" the track is looked up in every stream (track ids are unique per
// track role). ErrNotFound: no such track, or it carried no embedding.
func (s *Store) TrackEmbedding(ctx context.Context, stream, trackID string) ([]float32, int64, error) {
	if s.isClosed() {
		return nil, 0, ErrClosed
	}
	if trackID == "" || len(trackID) > MaxTrackIDLen {
		return nil, 0, fmt.Errorf("%w: track id of %d bytes (1..%d)", ErrInvalid, len(trackID), MaxTrackIDLen)
	}
	w := where{}
	w.add("e.track_id = ?", trackID)
	w.add("e.kind = ?", event.KindLeft)
	if stream != "" {
		w.add("e.stream = ?", stream)
	}
	var id int64
	var enc []byte
	err := s.DB.QueryRowContext(ctx, s.bind("SELECT e.id, f.embedding FROM vigil_events e JOIN vigil_faces f ON f.event_id = e.id"+
		w.String()+" ORDER BY e.id DESC LIMIT 1"), w.args...).Scan(&id, &enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: no stored embedding of track %q", ErrNotFound, trackID)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: %s: %w", s.Dialect.Name, err)
	}
	v, err := facesearch.Decode(enc)
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: track %q: %w", trackID, err)
	}
	return v, id, nil
}

// EraseRequest names a person whose traces Erase removes.
type EraseRequest struct {
	// Identity is the name the person was recognised as ("" for none).
	Identity string
	// Vectors are the person's embeddings (the gallery's): tracks at least MinSimilarity similar
	// to one of them are the person's too, recognised or not. Optional.
	Vectors       [][]float32
	MinSimilarity float32
}

// Erased reports what Erase removed.
type Erased struct {
	// Tracks counts the tracks whose every event went; Events, Snapshots and Embeddings the rows.
	Tracks     int64 `json:"tracks"`
	Events     int64 `json:"events"`
	Snapshots  int64 `json:"snapshots"`
	Embeddings int64 `json:"embeddings"`
	// Results counts the result summaries that named the identity.
	Results int64 `json:"results"`
}

// Erase removes every stored trace of a person: each track recognised as r.Identity or whose
// embedding matches r.Vectors, with all its events, snapshots and embedding, and the result
// summaries naming r.Identity. It returns what it removed.
func (s *Store) Erase(ctx context.Context, r EraseRequest) (Erased, error) {
	var out Erased
	if s.isClosed() {
		return out, ErrClosed
	}
	if r.Identity == "" && len(r.Vectors) == 0 {
		return out, fmt.Errorf("%w: erase needs an identity or embeddings", ErrInvalid)
	}
	type track struct{ stream, id string }
	tracks := map[track]bool{}
	if len(r.Vectors) > 0 {
		hits, err := s.faceHits(ctx, FaceQuery{Vectors: r.Vectors, MinSimilarity: r.MinSimilarity})
		if err != nil {
			return out, err
		}
		for _, h := range hits {
			sg, err := s.sighting(ctx, h.ID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return out, fmt.Errorf("eventstore: %s: erase: %w", s.Dialect.Name, err)
			}
			tracks[track{sg.Stream, sg.TrackID}] = true
		}
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return out, fmt.Errorf("eventstore: %s: erase: %w", s.Dialect.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	fail := func(err error) (Erased, error) {
		return Erased{}, fmt.Errorf("eventstore: %s: erase: %w", s.Dialect.Name, err)
	}
	if r.Identity != "" {
		rows, err := tx.QueryContext(ctx, s.bind("SELECT DISTINCT stream, track_id FROM vigil_events WHERE identity = ?"), r.Identity)
		if err != nil {
			return fail(err)
		}
		for rows.Next() {
			var t track
			if err := rows.Scan(&t.stream, &t.id); err != nil {
				rows.Close()
				return fail(err)
			}
			tracks[t] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
	}
	exec := func(q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, s.bind(q), args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	var removed []int64
	const ofTrack = "(SELECT id FROM vigil_events WHERE stream = ? AND track_id = ?)"
	for t := range tracks {
		rows, err := tx.QueryContext(ctx, s.bind("SELECT event_id FROM vigil_faces WHERE event_id IN "+ofTrack), t.stream, t.id)
		if err != nil {
			return fail(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fail(err)
			}
			removed = append(removed, id)
		}
		rows.Close()
		n, err := exec("DELETE FROM vigil_snapshots WHERE event_id IN "+ofTrack, t.stream, t.id)
		if err != nil {
			return fail(err)
		}
		out.Snapshots += n
		if n, err = exec("DELETE FROM vigil_faces WHERE event_id IN "+ofTrack, t.stream, t.id); err != nil {
			return fail(err)
		}
		out.Embeddings += n
		if n, err = exec("DELETE FROM vigil_events WHERE stream = ? AND track_id = ?", t.stream, t.id); err != nil {
			return fail(err)
		}
		out.Events += n
		out.Tracks++
	}
	if r.Identity != "" {
		name, err := json.Marshal(r.Identity)
		if err != nil {
			return fail(err)
		}
		pattern := "%" + likeEscaper.Replace(string(name)) + "%"
		n, err := exec(`DELETE FROM vigil_results WHERE identities LIKE ? ESCAPE '\'`, pattern)
		if err != nil {
			return fail(err)
		}
		out.Results = n
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	s.faces.mu.Lock()
	if s.faces.idx != nil {
		for _, id := range removed {
			s.faces.idx.Remove(id)
		}
	}
	s.faces.mu.Unlock()
	return out, nil
}

// likeEscaper escapes LIKE's wildcards (with ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// SetUnknown records that a track was filed under an unknown person (its face.left embedding
// row): search results carry it as unknown_id. A track without a stored embedding changes
// nothing.
func (s *Store) SetUnknown(ctx context.Context, stream, trackID, unknownID string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if _, err := s.DB.ExecContext(ctx, s.bind(`UPDATE vigil_faces SET unknown_id = ? WHERE event_id IN
		(SELECT id FROM vigil_events WHERE stream = ? AND track_id = ? AND kind = ?)`), unknownID, stream, trackID, event.KindLeft); err != nil {
		return fmt.Errorf("eventstore: %s: set unknown: %w", s.Dialect.Name, err)
	}
	return nil
}

// RelabelUnknown files every track of unknown from under to ("" clears it: the unknown was
// deleted or enrolled).
func (s *Store) RelabelUnknown(ctx context.Context, from, to string) error {
	if s.isClosed() {
		return ErrClosed
	}
	var v any
	if to != "" {
		v = to
	}
	if _, err := s.DB.ExecContext(ctx, s.bind("UPDATE vigil_faces SET unknown_id = ? WHERE unknown_id = ?"), v, from); err != nil {
		return fmt.Errorf("eventstore: %s: relabel unknown: %w", s.Dialect.Name, err)
	}
	return nil
}

// TrackSnapshot returns the path of a track's best snapshot (as Sighting.Snapshot), "" when it
// has none.
func (s *Store) TrackSnapshot(ctx context.Context, stream, trackID string) (string, error) {
	var id int64
	err := s.DB.QueryRowContext(ctx, s.bind(`SELECT e.id FROM vigil_events e JOIN vigil_snapshots s ON s.event_id = e.id
		WHERE e.stream = ? AND e.track_id = ?
		ORDER BY CASE e.kind WHEN 'face.recognized' THEN 0 WHEN 'face.left' THEN 1 ELSE 2 END LIMIT 1`), stream, trackID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("eventstore: %s: %w", s.Dialect.Name, err)
	}
	return strings.Replace(PathSnapshot, "{id}", strconv.FormatInt(id, 10), 1), nil
}
