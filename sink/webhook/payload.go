package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
)

// PayloadSchema is the value of Payload.Schema.
const PayloadSchema = 1

// TypeResult is the payload type of a result; events use their kind (event.KindAppeared,
// event.KindRecognized, event.KindLeft).
const TypeResult = "result"

// Types returns every payload type, the values Filter.Types accepts.
func Types() []string {
	return []string{TypeResult, event.KindAppeared, event.KindRecognized, event.KindLeft}
}

// ErrPayload is wrapped by ParsePayload's errors.
var ErrPayload = errors.New("webhook: invalid payload")

// Payload is the JSON body of every delivery. Exactly one of Result and Event is set, as Type
// says. For example:
//
//	{"schema":1,"type":"face.recognized","delivery":"e.lobby.mwr389h9-3.face.recognized",
//	 "event":{"schema":1,"kind":"face.recognized","stream":"lobby","track_id":"mwr389h9-3",...},
//	 "snapshot_jpeg":"/9j/4AAQSkZJRg..."}
//
//	{"schema":1,"type":"result","delivery":"r.lobby.57.1795306514543868149",
//	 "result":{"schema":1,"stream":"lobby","seq":57,"faces":[...],...}}
//
// Adding optional fields keeps Schema; renaming or removing one bumps it.
type Payload struct {
	// Schema is PayloadSchema.
	Schema int `json:"schema"`
	// Type is TypeResult or the event's kind.
	Type string `json:"type"`
	// Delivery identifies the document, the same in every attempt and redelivery (also in
	// HeaderDelivery): "r.<stream>.<seq>.<captured_at Unix ns>" for results,
	// "e.<stream>.<track_id>.<kind>" for events.
	Delivery string `json:"delivery"`
	// Result is the result, with only the faces that passed the filter.
	Result *result.Result `json:"result,omitempty"`
	// Event is the track event.
	Event *event.Event `json:"event,omitempty"`
	// Snapshot is the event's face crop as JPEG (base64 in JSON), when the sink includes
	// snapshots and one was available.
	Snapshot []byte `json:"snapshot_jpeg,omitempty"`
}

// ResultDelivery returns a result's delivery id.
func ResultDelivery(r result.Result) string {
	return "r." + r.Stream + "." + strconv.FormatUint(r.Seq, 10) + "." + strconv.FormatInt(r.CapturedAt.UnixNano(), 10)
}

// EventDelivery returns an event's delivery id.
func EventDelivery(ev event.Event) string {
	return "e." + ev.Stream + "." + ev.TrackID + "." + ev.Kind
}

// MaxPayloadBytes bounds what ParsePayload accepts.
const MaxPayloadBytes = 8 << 20

// ParsePayload decodes and checks a delivery body (after Verify): the schema, the type, the
// document the type names (checked like result.ParseResult and event.ParseEvent) and its
// delivery id. Errors wrap ErrPayload.
func ParsePayload(body []byte) (Payload, error) {
	if len(body) > MaxPayloadBytes {
		return Payload{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrPayload, len(body), MaxPayloadBytes)
	}
	var raw struct {
		Schema   int             `json:"schema"`
		Type     string          `json:"type"`
		Delivery string          `json:"delivery"`
		Result   json.RawMessage `json:"result"`
		Event    json.RawMessage `json:"event"`
		Snapshot []byte          `json:"snapshot_jpeg"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	if raw.Schema != PayloadSchema {
		return Payload{}, fmt.Errorf("%w: schema %d (this build reads %d)", ErrPayload, raw.Schema, PayloadSchema)
	}
	if !slices.Contains(Types(), raw.Type) {
		return Payload{}, fmt.Errorf("%w: unknown type %q", ErrPayload, raw.Type)
	}
	p := Payload{Schema: raw.Schema, Type: raw.Type, Delivery: raw.Delivery, Snapshot: raw.Snapshot}
	isNull := func(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }
	if raw.Type == TypeResult {
		if isNull(raw.Result) || !isNull(raw.Event) {
			return Payload{}, fmt.Errorf("%w: type result needs a result and no event", ErrPayload)
		}
		r, err := result.ParseResult(raw.Result)
		if err != nil {
			return Payload{}, fmt.Errorf("%w: %w", ErrPayload, err)
		}
		if p.Delivery != ResultDelivery(r) {
			return Payload{}, fmt.Errorf("%w: delivery %q does not match the result", ErrPayload, p.Delivery)
		}
		p.Result = &r
		return p, nil
	}
	if isNull(raw.Event) || !isNull(raw.Result) {
		return Payload{}, fmt.Errorf("%w: type %s needs an event and no result", ErrPayload, raw.Type)
	}
	ev, err := event.ParseEvent(raw.Event)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	if ev.Kind != raw.Type {
		return Payload{}, fmt.Errorf("%w: type %s carries a %s event", ErrPayload, raw.Type, ev.Kind)
	}
	if p.Delivery != EventDelivery(ev) {
		return Payload{}, fmt.Errorf("%w: delivery %q does not match the event", ErrPayload, p.Delivery)
	}
	p.Event = &ev
	return p, nil
}

// Filter selects what a sink delivers. The zero Filter delivers every event and every result
// with at least one face.
type Filter struct {
	// Streams limits deliveries to these streams. Default: every stream.
	Streams []string
	// Types limits deliveries to these payload types (TypeResult, event.KindAppeared,
	// event.KindRecognized, event.KindLeft). Default: all of them.
	Types []string
	// Identified keeps only faces with an identity (results) and events with one
	// (face.recognized, and face.left of a recognised track). Default false.
	Identified bool
	// Identities keeps only faces and events whose identity is one of these names (implies
	// Identified). Default: any.
	Identities []string
	// MinScore removes result faces whose detector score is below it. Default 0: none.
	MinScore float32
	// MinSimilarity treats an identity whose similarity is below it as no identity, for
	// Identified and Identities. Default 0.
	MinSimilarity float32
	// KeepEmpty delivers results left with no face (after the face filters, or because none was
	// found). Default false: a result is delivered only with at least one face.
	KeepEmpty bool
}

// Validate checks the stream names and types.
func (f Filter) Validate() error {
	for _, s := range f.Streams {
		if err := frame.ValidateStream(s); err != nil {
			return fmt.Errorf("webhook filter: %w", err)
		}
	}
	for _, t := range f.Types {
		if !slices.Contains(Types(), t) {
			return fmt.Errorf("webhook filter: unknown type %q (use %v)", t, Types())
		}
	}
	if f.MinScore < 0 || f.MinScore > 1 || f.MinSimilarity < -1 || f.MinSimilarity > 1 {
		return fmt.Errorf("webhook filter: MinScore %v outside 0..1 or MinSimilarity %v outside -1..1", f.MinScore, f.MinSimilarity)
	}
	return nil
}

func (f Filter) wants(stream, typ string) bool {
	return (len(f.Streams) == 0 || slices.Contains(f.Streams, stream)) &&
		(len(f.Types) == 0 || slices.Contains(f.Types, typ))
}

func (f Filter) identityOK(id *result.Identity) bool {
	if !f.Identified && len(f.Identities) == 0 {
		return true
	}
	if id == nil || id.Name == "" || id.Similarity < f.MinSimilarity {
		return false
	}
	return len(f.Identities) == 0 || slices.Contains(f.Identities, id.Name)
}

// Result returns r with only the faces that pass, and whether to deliver it. r is not modified.
func (f Filter) Result(r result.Result) (result.Result, bool) {
	if !f.wants(r.Stream, TypeResult) {
		return r, false
	}
	faces := make([]result.Face, 0, len(r.Faces))
	for _, face := range r.Faces {
		if face.Score >= f.MinScore && f.identityOK(face.Identity) {
			faces = append(faces, face)
		}
	}
	r.Faces = faces
	return r, len(faces) > 0 || f.KeepEmpty
}

// Event reports whether to deliver ev.
func (f Filter) Event(ev event.Event) bool {
	return f.wants(ev.Stream, ev.Kind) && f.identityOK(ev.Identity)
}
