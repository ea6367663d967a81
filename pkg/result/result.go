// Package result defines the versioned JSON documents the analyzers publish: one Result per
// analysed frame on vigil.results.<stream>, one Drop per frame that was not analysed on
// vigil.drops.<stream>, and one EndOfStream when a finite source ends on vigil.eos.<stream>.
//
// The package is pure Go. Field names are part of the public wire format; adding optional fields
// keeps SchemaVersion, renaming or removing one bumps it.
package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
)

// SchemaVersion is the value of the "schema" field of every document this package produces.
const SchemaVersion = 1

// ErrSchema is wrapped by the Parse functions when a document has an unknown schema version or
// misses a required field.
var ErrSchema = errors.New("unsupported result document")

// Result is the analysis of one frame.
type Result struct {
	Schema     int       `json:"schema"`
	Stream     string    `json:"stream"`
	Seq        uint64    `json:"seq"`
	CapturedAt time.Time `json:"captured_at"`
	AnalyzedAt time.Time `json:"analyzed_at"`
	// LatencyMS is AnalyzedAt - CapturedAt in milliseconds: capture to result.
	LatencyMS float64 `json:"latency_ms"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	// Faces lists the faces found, largest first; empty (not null) when there are none.
	Faces []Face `json:"faces"`
	// Classifications holds custom classifier outputs; omitted when none ran.
	Classifications []Classification `json:"classifications,omitempty"`
	// Analyzer names the analyzer instance that produced this result.
	Analyzer string `json:"analyzer,omitempty"`
}

// DefaultMinRecognitionSize is the analyzers' default minimum face size for recognition: the
// shortest box side, in frame pixels, from which a face is embedded and its liveness estimated
// (see Face.TooSmall).
const DefaultMinRecognitionSize = 40

// Box is an axis-aligned rectangle in pixels of the analysed frame.
type Box struct {
	X1 float32 `json:"x1"`
	Y1 float32 `json:"y1"`
	X2 float32 `json:"x2"`
	Y2 float32 `json:"y2"`
}

// Point is a 2-D point in pixels of the analysed frame.
type Point struct {
	X float32 `json:"x"`
	Y float32 `json:"y"`
}

// Face is one detected face and whatever the enabled heads said about it. Optional parts are
// nil when their head did not run.
type Face struct {
	Box Box `json:"box"`
	// Score is the detector's confidence in 0..1.
	Score float32 `json:"score"`
	// Landmarks are 5 points: left eye, right eye, nose tip, left and right mouth corner.
	Landmarks []Point `json:"landmarks,omitempty"`
	// TrackID identifies the face across frames of its stream, once tracking runs.
	TrackID  string    `json:"track_id,omitempty"`
	Identity *Identity `json:"identity,omitempty"`
	// UnknownID names the unknown person (GET /v1/unknowns/{id}) the face's track matches,
	// when it has no identity: the track role compares the track's embedding with the unknowns'
	// centroids (the vigil_unknowns bucket) at the identity threshold. Absent for identified
	// faces, faces no unknown matches yet, and outside tracking.
	UnknownID string `json:"unknown_id,omitempty"`
	// Age is the estimated age in years.
	Age      *float32  `json:"age,omitempty"`
	Gender   *Gender   `json:"gender,omitempty"`
	Emotion  *Emotion  `json:"emotion,omitempty"`
	Liveness *Liveness `json:"liveness,omitempty"`
	Pose     *Pose     `json:"pose,omitempty"`
	// TooSmall is true when the face's box is smaller than the analyzer's minimum for
	// recognition (its shorter side below DefaultMinRecognitionSize by default): the face was
	// not embedded and its liveness was not estimated, rather than guessed, so its identity and
	// liveness are absent unless its track settled them on a larger sighting. Show it as
	// "too small", not "unknown".
	TooSmall bool `json:"too_small,omitempty"`
	// Embedding is the L2-normalised 512-d face embedding; only present when requested.
	Embedding []float32 `json:"embedding,omitempty"`
	// HeadsSeq and HeadsCapturedAt name the newest frame of this face's track that the attribute
	// values (age, gender, emotion, liveness, pose) rest on: the track role aggregates each head
	// over the frames it ran on and puts the track's current values on every face of the track.
	// Absent when no head has run on the track yet, and outside tracking.
	HeadsSeq        uint64     `json:"heads_seq,omitempty"`
	HeadsCapturedAt *time.Time `json:"heads_captured_at,omitempty"`
	// PendingHeads lists heads requested on this face's frame that run after its result went
	// out (the analyzer's late heads, emotion by default on live frames): their outputs follow in
	// a late-heads document (bus.LateHeadsPrefix) for the same seq, which the track role folds
	// into the face's track. Absent when every requested head ran before the result.
	PendingHeads []string `json:"pending_heads,omitempty"`
}

// Identity is a gallery match.
type Identity struct {
	Name       string  `json:"name"`
	Similarity float32 `json:"similarity"`
}

// Gender is the gender head's verdict. Label is "male" when the model's male score exceeds the
// configured threshold, else "female"; Score is the probability, in 0..1, of the label shown
// (the male score for "male", one minus it for "female"). Use GenderFromMale to build one and
// Male to read the male probability back.
type Gender struct {
	Label string  `json:"label"`
	Score float32 `json:"score"`
}

// GenderFromMale builds a Gender from a male score (clamped into 0..1; SSR-Net can leave it
// slightly) and the threshold above which it is labelled male.
func GenderFromMale(male, threshold float32) *Gender {
	male = min(max(male, 0), 1)
	if male != male { // NaN
		male = 0.5
	}
	if male > threshold {
		return &Gender{Label: "male", Score: male}
	}
	return &Gender{Label: "female", Score: 1 - male}
}

// Male returns the probability, in 0..1, that the face is male.
func (g Gender) Male() float32 {
	s := min(max(g.Score, 0), 1)
	if g.Label == "male" {
		return s
	}
	return 1 - s
}

// Emotion is the expression head's verdict: Label is the most probable of Scores.
type Emotion struct {
	Label  string             `json:"label"`
	Scores map[string]float32 `json:"scores"`
}

// Liveness is the anti-spoofing head's verdict: Score is the probability the face is a live
// person; Real is Score >= the configured threshold.
type Liveness struct {
	Real  bool    `json:"real"`
	Score float32 `json:"score"`
}

// Pose is the head orientation in degrees.
type Pose struct {
	Yaw   float32 `json:"yaw"`
	Pitch float32 `json:"pitch"`
	Roll  float32 `json:"roll"`
}

// Classification is one custom classifier's top label for a target.
type Classification struct {
	Model  string  `json:"model"`
	Label  string  `json:"label"`
	Score  float32 `json:"score"`
	Target string  `json:"target"`
}

// Drop reasons: why a frame got no Result.
const (
	ReasonDeadline = "deadline" // older than the analyzer's deadline when dequeued
	ReasonQueue    = "queue"    // the analyzer's bounded queue was full
	// ReasonSuperseded: a newer frame of the same stream reached the analyzer before this one was
	// analysed; the newer frame took its place (newest-frame flow control).
	ReasonSuperseded = "superseded"
	ReasonDecode     = "decode"    // the payload is not a decodable image
	ReasonInfer      = "inference" // a model failed on this frame
	ReasonShutdown   = "shutdown"  // the analyzer stopped before it ran
)

// Drop records a frame that was received but not analysed.
type Drop struct {
	Schema int       `json:"schema"`
	Stream string    `json:"stream"`
	Seq    uint64    `json:"seq"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// EndOfStream is published once when a finite source (a file read once) has published its last
// frame. Frames is the number of frames published for the stream, so a consumer knows when it has
// seen a Result or Drop for each.
type EndOfStream struct {
	Schema int       `json:"schema"`
	Stream string    `json:"stream"`
	Frames uint64    `json:"frames"`
	At     time.Time `json:"at"`
	// Error is set when the source ended because of an error rather than at its end.
	Error string `json:"error,omitempty"`
}

func check(schema int, stream string) error {
	if schema != SchemaVersion {
		return fmt.Errorf("%w: schema %d (this build reads %d)", ErrSchema, schema, SchemaVersion)
	}
	if err := frame.ValidateStream(stream); err != nil {
		return fmt.Errorf("%w: %w", ErrSchema, err)
	}
	return nil
}

// ParseResult decodes and checks a Result document.
func ParseResult(data []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	if err := check(r.Schema, r.Stream); err != nil {
		return Result{}, err
	}
	return r, nil
}

// ParseDrop decodes and checks a Drop document.
func ParseDrop(data []byte) (Drop, error) {
	var d Drop
	if err := json.Unmarshal(data, &d); err != nil {
		return Drop{}, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	if err := check(d.Schema, d.Stream); err != nil {
		return Drop{}, err
	}
	return d, nil
}

// ParseEndOfStream decodes and checks an EndOfStream document.
func ParseEndOfStream(data []byte) (EndOfStream, error) {
	var e EndOfStream
	if err := json.Unmarshal(data, &e); err != nil {
		return EndOfStream{}, fmt.Errorf("%w: %w", ErrSchema, err)
	}
	if err := check(e.Schema, e.Stream); err != nil {
		return EndOfStream{}, err
	}
	return e, nil
}
