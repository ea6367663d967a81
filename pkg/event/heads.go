package event

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/heads"
)

// DefaultHeads are the heads the track role schedules per track by default: every face head
// (the analyzers' default on-demand heads, `vigil analyze --on-demand-heads all`). Analyzers run
// only detection and landmarks on every frame; these run on a track's frames when the track
// role asks (new track, until its identity settles, on a schedule, on a better view).
var DefaultHeads = heads.All()

// Heads-request reasons.
const (
	// RequestNewTrack: a track has not had the heads' output yet.
	RequestNewTrack = "new_track"
	// RequestStale: a track's latest heads output is older than Role.HeadsInterval.
	RequestStale = "stale"
)

// HeadsRequest asks a stream's ingest to request heads on its next frame: JSON on
// vigil.control.heads.<stream>. Ingest sets the frame's Vigil-Heads header to Heads (merged with
// any other request that arrived since its last frame); analyzers then run those of the heads
// they hold on-demand on every face of that frame.
type HeadsRequest struct {
	Schema int    `json:"schema"`
	Stream string `json:"stream"`
	// Heads are head names (lower-case [a-z0-9_-], 1-32 bytes, at most frame.MaxHeads).
	Heads []string `json:"heads"`
	// Reason says why: RequestNewTrack, RequestStale, or the track role's own reasons
	// ("settle", "better_view"); informative.
	Reason string `json:"reason,omitempty"`
	// Tracks lists the track ids that need the heads; informative.
	Tracks []string `json:"tracks,omitempty"`
	// At is when the request was made (wall clock).
	At time.Time `json:"at"`
}

// HeadsSubject returns vigil.control.heads.<stream> after validating stream.
func HeadsSubject(stream string) (string, error) { return bus.Subject(HeadsPrefix, stream) }

// ParseHeadsRequest decodes and checks a heads request: schema, stream and head names exactly as
// a frame's Vigil-Heads header accepts them, so a request can never make a frame invalid. Every
// error wraps ErrEvent.
func ParseHeadsRequest(data []byte) (HeadsRequest, error) {
	var r HeadsRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return HeadsRequest{}, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	if r.Schema != EventSchema {
		return HeadsRequest{}, fmt.Errorf("%w: heads request schema %d (this build reads %d)", ErrEvent, r.Schema, EventSchema)
	}
	if err := ValidateHeads(r.Stream, r.Heads); err != nil {
		return HeadsRequest{}, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	return r, nil
}

// ValidateHeads checks a stream and head list by frame.Frame's own rules (the Vigil-Heads header):
// an error means a frame carrying them would not validate.
func ValidateHeads(stream string, heads []string) error {
	probe := frame.Frame{Stream: stream, Seq: 1, Width: 1, Height: 1, Encoding: frame.EncodingJPEG, Data: []byte{0}, Heads: heads}
	return probe.Validate()
}

// HeadsInbox is the ingest side of heads requests for one stream: it subscribes to
// vigil.control.heads.<stream> and keeps the union of the heads requested since the last Take.
// Its methods are safe for concurrent use, and a nil *HeadsInbox takes nothing.
type HeadsInbox struct {
	stream string
	sub    *nats.Subscription

	mu      sync.Mutex
	pending []string
	bad     uint64
}

// SubscribeHeads subscribes to stream's heads requests on nc and returns once the server has
// confirmed the subscription. Requests that do not parse, or name another stream, are ignored
// (counted in Rejected). The caller must Close the inbox.
func SubscribeHeads(nc *nats.Conn, stream string) (*HeadsInbox, error) {
	subj, err := HeadsSubject(stream)
	if err != nil {
		return nil, err
	}
	in := &HeadsInbox{stream: stream}
	in.sub, err = nc.Subscribe(subj, in.receive)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subj, err)
	}
	if err := nc.Flush(); err != nil {
		_ = in.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", subj, err)
	}
	return in, nil
}

func (in *HeadsInbox) receive(m *nats.Msg) {
	req, err := ParseHeadsRequest(m.Data)
	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil || req.Stream != in.stream {
		in.bad++
		return
	}
	in.pending = frame.AddHeads(in.pending, req.Heads)
}

// Take returns the heads requested since the last Take (nil when none) and forgets them: the
// caller puts them on the next frame it publishes (frame.Frame.Heads).
func (in *HeadsInbox) Take() []string {
	if in == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	h := in.pending
	in.pending = nil
	return h
}

// Rejected counts the requests ignored because they did not parse or named another stream.
func (in *HeadsInbox) Rejected() uint64 {
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.bad
}

// Close unsubscribes. Safe on nil and more than once.
func (in *HeadsInbox) Close() {
	if in == nil || in.sub == nil {
		return
	}
	_ = in.sub.Unsubscribe()
}
