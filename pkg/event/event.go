// Package event holds the track stage's wire formats: the events published on
// vigil.events.<stream>.<kind> (face.appeared, face.recognized, face.left), the crop references
// they carry, and the heads requests the track role sends to a stream's ingest on
// vigil.control.heads.<stream>, with the ingest-side inbox for them. Producers (analyze/track) and
// consumers (ingest, sinks) import it; it imports only other pkg/ leaves.
//
// The package is pure Go (no cgo).
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
)

// Subject prefixes of the track stage. A full subject is prefix + "." + a validated stream id
// (events add "." + the event kind). They belong next to pkg/bus's prefixes and may move there.
const (
	// AnalyzedPrefix carries the analyzers' full results (with embeddings) to the track role,
	// which republishes them enriched on bus.ResultsPrefix.
	AnalyzedPrefix = "vigil.analyzed"
	// EventsPrefix carries track events: vigil.events.<stream>.<kind>.
	EventsPrefix = "vigil.events"
	// HeadsPrefix carries heads requests to the stream's ingest: vigil.control.heads.<stream>.
	HeadsPrefix = "vigil.control.heads"
)

// Event kinds: each is published at most once per track, on vigil.events.<stream>.<kind>.
const (
	// KindAppeared: a track was confirmed (seen in TrackerConfig.MinHits frames in a row).
	KindAppeared = "face.appeared"
	// KindRecognized: the track's identity vote settled on a gallery identity.
	KindRecognized = "face.recognized"
	// KindLeft: a confirmed track ended. Every face.appeared is followed by exactly one face.left.
	KindLeft = "face.left"
)

// Reasons a track ended, in face.left events.
const (
	// ReasonLost: the face was not seen for TrackerConfig.MaxMisses frames or MaxAge.
	ReasonLost = "lost"
	// ReasonEnd: the stream ended (end-of-stream record, every frame accounted for).
	ReasonEnd = "end"
	// ReasonIdle: no result came for the stream for Role.IdleTimeout.
	ReasonIdle = "idle"
	// ReasonRestart: the stream's sequence numbers started over (its source restarted).
	ReasonRestart = "restart"
	// ReasonShutdown: the track role stopped.
	ReasonShutdown = "shutdown"
)

// EventSchema is the value of the "schema" field of events and heads requests.
const EventSchema = 1

// ErrEvent is wrapped by ParseEvent and ParseHeadsRequest for documents they cannot accept.
var ErrEvent = errors.New("invalid track document")

// Crop references the picture of a face without carrying pixels: the frame with sequence Seq of
// Stream (the JPEG ingest published on vigil.frames.<stream> with Vigil-Seq = Seq, and the Result
// with that seq on vigil.results.<stream>), and Box in pixels of that frame (Width x Height, the
// published image's size). A UI resolves it from the frames it keeps (for example a ring buffer of
// the stream's recent frames keyed by seq) by cutting Box out of that image.
type Crop struct {
	Stream     string     `json:"stream"`
	Seq        uint64     `json:"seq"`
	CapturedAt time.Time  `json:"captured_at"`
	Box        result.Box `json:"box"`
	Width      int        `json:"width"`
	Height     int        `json:"height"`
}

// Event is a track event, JSON on vigil.events.<stream>.<kind>. Adding optional fields keeps
// Schema; renaming or removing one bumps it. For example, on vigil.events.lobby.face.recognized:
//
//	{"schema":1,"kind":"face.recognized","stream":"lobby","track_id":"mwr389h9-3",
//	 "seq":57,"captured_at":"2026-11-22T00:05:14.5Z","at":"2026-11-22T00:05:14.61Z",
//	 "crop":{"stream":"lobby","seq":55,"captured_at":"2026-11-22T00:05:14.1Z",
//	         "box":{"x1":255,"y1":5.8,"x2":405.9,"y2":156.7},"width":596,"height":336},
//	 "identity":{"name":"Barack_Obama","similarity":0.84},
//	 "first_seen":"2026-11-22T00:05:13.9Z","last_seen":"2026-11-22T00:05:14.5Z","frames":4}
type Event struct {
	Schema int `json:"schema"`
	// Kind is KindAppeared, KindRecognized or KindLeft.
	Kind    string `json:"kind"`
	Stream  string `json:"stream"`
	TrackID string `json:"track_id"`
	// Seq and CapturedAt identify the frame whose analysis decided the event (for face.left after
	// idle, restart, end or shutdown: the track's last frame).
	Seq        uint64    `json:"seq"`
	CapturedAt time.Time `json:"captured_at"`
	// At is when the track role published the event (wall clock).
	At time.Time `json:"at"`
	// Crop is the best sighting of the face (largest, most confident, most frontal) among the
	// track's last frames: for face.appeared among its first frames, for face.recognized among the
	// frames that voted for the identity, for face.left among its last frames.
	Crop Crop `json:"crop"`
	// Identity is the settled identity: in face.recognized, and in face.left when the track was
	// recognized. Similarity is the quality-weighted mean over the frames that voted for it.
	Identity *result.Identity `json:"identity,omitempty"`
	// UnknownID is the unknown person (GET /v1/unknowns/{id}) the track matched, in events of
	// a track without identity: in face.appeared and face.left once the track role matched the
	// track's embedding to an existing unknown (see result.Face.UnknownID). A track that matches
	// none has none here; the unknowns sink then files its face.left under a new unknown.
	UnknownID string `json:"unknown_id,omitempty"`
	// FirstSeen and LastSeen are the capture times of the track's first and latest sightings;
	// Frames counts its sightings.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Frames    int       `json:"frames"`
	// Reason says why the track ended (face.left only): ReasonLost, ReasonEnd, ReasonIdle,
	// ReasonRestart or ReasonShutdown.
	Reason string `json:"reason,omitempty"`
	// Embedding is the track's L2-normalised face embedding (face.left only, when the analyzers
	// computed embeddings): the running mean of its sightings' embeddings, the one the tracker
	// associates faces with. The event store keeps it for search by photo
	// (POST /v1/search/faces).
	Embedding []float32 `json:"embedding,omitempty"`
}

// EventSubject returns vigil.events.<stream>.<kind> after validating stream and kind.
func EventSubject(stream, kind string) (string, error) {
	switch kind {
	case KindAppeared, KindRecognized, KindLeft:
	default:
		return "", fmt.Errorf("%w: unknown event kind %q", ErrEvent, kind)
	}
	s, err := bus.Subject(EventsPrefix, stream)
	if err != nil {
		return "", err
	}
	return s + "." + kind, nil
}

// ParseEvent decodes and checks an Event document.
func ParseEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	if e.Schema != EventSchema {
		return Event{}, fmt.Errorf("%w: schema %d (this build reads %d)", ErrEvent, e.Schema, EventSchema)
	}
	if err := frame.ValidateStream(e.Stream); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	if _, err := EventSubject(e.Stream, e.Kind); err != nil {
		return Event{}, err
	}
	if e.TrackID == "" {
		return Event{}, fmt.Errorf("%w: no track_id", ErrEvent)
	}
	return e, nil
}
