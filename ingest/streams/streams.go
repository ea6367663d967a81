// Package streams manages the list of streams an ingest process runs: what each stream reads,
// at which rate and size it publishes, whether it is enabled and which ingest node runs it. The
// list comes from flags, from a YAML file (ParseFile), and changes at run time through HTTP
// (Registry.Mount: /v1/streams) and a NATS request subject (Registry.ServeNATS:
// vigil.control.streams). It persists in a JetStream key-value bucket (KVStore, "vigil-streams"
// by default), so a restarted ingest resumes its streams and several ingest processes share one
// list.
//
// Which process runs a stream: every Registry watches the whole store and runs, through its
// Runner, the streams assigned to it. An ingest started without a node name (Registry.Node "")
// runs every stream; an ingest named N runs exactly the streams whose Spec.Node is N. So a
// single ingest needs no names at all, and a deployment of several ingests names each one
// (--node) and gives every stream a node; a stream naming no node then runs nowhere but on an
// unnamed ingest, which is why named and unnamed ingests should not share a bucket (the unnamed
// one would run every stream a second time).
//
// The package is pure Go: the video side (decoding, sampling, encoding, publishing) is the
// Runner, implemented by ingest.Manager.
package streams

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-video/vigil/pkg/frame"
)

// PushSource is the Source of a push stream: it reads nothing and publishes the images clients
// POST to /v1/streams/{stream}/frames.
const PushSource = "push"

// Defaults of a Spec's zero fields (the same as ingest.StreamConfig's).
const (
	DefaultFPS         = 5
	DefaultMaxWidth    = 1280
	DefaultMaxHeight   = 720
	DefaultJPEGQuality = 80
)

// Limits of a Spec's fields.
const (
	// MaxFPS bounds Spec.FPS.
	MaxFPS = 240
	// MinDimension bounds Spec.MaxWidth and MaxHeight from below; frame.MaxDimension from above.
	MinDimension = 16
	// MaxSourceLen bounds Spec.Source in bytes.
	MaxSourceLen = 4096
	// MaxNodeLen bounds Spec.Node.
	MaxNodeLen = 64
)

// Spec is one stream's desired configuration, as the streams file, the HTTP API, the NATS
// control subject and the key-value bucket carry it (JSON and YAML keys in snake case).
type Spec struct {
	// Name is the stream id ([A-Za-z0-9_-], 1..64); it names the NATS subjects
	// vigil.frames.<name> and so on, and the key in the bucket. Required.
	Name string `json:"name" yaml:"name"`
	// Source is what the stream reads: a file path or file:// URL, rtsp://, rtsps://, http(s)://,
	// device:N or /dev/videoN (see ingest.Open), or PushSource ("push") for a stream whose frames
	// clients POST. At most MaxSourceLen bytes. Required. Passwords in URLs are stored, used and
	// never shown: Status and logs carry the URL redacted.
	Source string `json:"source" yaml:"source"`
	// Node names the ingest node that runs the stream ([A-Za-z0-9_-], at most 64); "" for an
	// unnamed ingest (see the package comment). Default "".
	Node string `json:"node,omitempty" yaml:"node"`
	// Enabled runs the stream; a disabled stream keeps its configuration and publishes nothing.
	// Default true (a missing key in a file or request body means enabled).
	Enabled bool `json:"enabled" yaml:"enabled"`
	// FPS is the analysis rate: frames per second of media time published, 0 < FPS <= MaxFPS
	// (a rate at or above the source's keeps every frame). Default DefaultFPS (0 means default).
	FPS float64 `json:"fps" yaml:"fps"`
	// MaxWidth and MaxHeight bound the published image (scaled down before encoding, aspect
	// kept), MinDimension..frame.MaxDimension. Default DefaultMaxWidth x DefaultMaxHeight.
	MaxWidth  int `json:"max_width" yaml:"max_width"`
	MaxHeight int `json:"max_height" yaml:"max_height"`
	// JPEGQuality is the published frames' JPEG quality, 1..100. Default DefaultJPEGQuality.
	JPEGQuality int `json:"jpeg_quality" yaml:"jpeg_quality"`
	// Loop restarts a file source at its end instead of ending the stream. Default false.
	Loop bool `json:"loop,omitempty" yaml:"loop"`
	// Realtime paces a file source at its own frame rate, as a camera would deliver it. Default
	// false (read as fast as it decodes).
	Realtime bool `json:"realtime,omitempty" yaml:"realtime"`
}

// SetDefaults fills zero fields with their defaults (Enabled is not touched: the decoders set
// it).
func (s *Spec) SetDefaults() {
	if s.FPS == 0 {
		s.FPS = DefaultFPS
	}
	if s.MaxWidth == 0 {
		s.MaxWidth = DefaultMaxWidth
	}
	if s.MaxHeight == 0 {
		s.MaxHeight = DefaultMaxHeight
	}
	if s.JPEGQuality == 0 {
		s.JPEGQuality = DefaultJPEGQuality
	}
}

// IsPush reports whether the stream takes pushed frames instead of reading a source.
func (s Spec) IsPush() bool { return s.Source == PushSource }

// SourceChecker checks the form of a source that is not PushSource (scheme, host, port, device
// index) without touching the network or the file system; ingest.Manager.CheckSource is one.
type SourceChecker func(source string) error

// Validate checks a Spec whose defaults are set: the name, the node, every bound, and the
// source's form through check (nil: only length and characters). Every error wraps ErrInvalid
// (frame.ErrInvalidStream for a bad name) and says which field is wrong and why.
func (s Spec) Validate(check SourceChecker) error {
	if err := frame.ValidateStream(s.Name); err != nil {
		return fmt.Errorf("stream name: %w", err)
	}
	if err := ValidateNode(s.Node); err != nil {
		return fmt.Errorf("stream %s: %w", s.Name, err)
	}
	if err := validSourceText(s.Source); err != nil {
		return fmt.Errorf("%w: stream %s: source: %w", ErrInvalid, s.Name, err)
	}
	if !s.IsPush() && check != nil {
		if err := check(s.Source); err != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrInvalid, s.Name, err)
		}
	}
	switch {
	case !(s.FPS > 0 && s.FPS <= MaxFPS): // also refuses NaN
		return fmt.Errorf("%w: stream %s: fps %v outside (0, %d]", ErrInvalid, s.Name, s.FPS, MaxFPS)
	case s.MaxWidth < MinDimension || s.MaxWidth > frame.MaxDimension || s.MaxHeight < MinDimension || s.MaxHeight > frame.MaxDimension:
		return fmt.Errorf("%w: stream %s: max size %dx%d outside %d..%d", ErrInvalid, s.Name, s.MaxWidth, s.MaxHeight, MinDimension, frame.MaxDimension)
	case s.JPEGQuality < 1 || s.JPEGQuality > 100:
		return fmt.Errorf("%w: stream %s: jpeg_quality %d outside 1..100", ErrInvalid, s.Name, s.JPEGQuality)
	case s.IsPush() && (s.Loop || s.Realtime):
		return fmt.Errorf("%w: stream %s: loop and realtime apply to file sources, not to a push stream", ErrInvalid, s.Name)
	}
	return nil
}

// ValidateNode checks an ingest node name: "" or 1..MaxNodeLen characters from [A-Za-z0-9_-].
func ValidateNode(node string) error {
	if node == "" {
		return nil
	}
	if err := frame.ValidateStream(node); err != nil {
		return fmt.Errorf("%w: node name: %s", ErrInvalid, strings.TrimPrefix(err.Error(), frame.ErrInvalidStream.Error()+": "))
	}
	return nil
}

func validSourceText(src string) error {
	switch {
	case src == "":
		return errors.New("empty: give a file path, an rtsp://, rtsps://, http(s):// URL, device:N, or push")
	case len(src) > MaxSourceLen:
		return fmt.Errorf("%d bytes long (at most %d)", len(src), MaxSourceLen)
	case !utf8.ValidString(src):
		return errors.New("not valid UTF-8")
	}
	for i, r := range src {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("control character %q at byte %d", r, i)
		}
	}
	return nil
}

// Redacted returns s with any password in a URL source replaced by "xxxxx", for logs and
// replies.
func (s Spec) Redacted() Spec {
	s.Source = RedactSource(s.Source)
	return s
}

// RedactSource returns src with the password of a URL replaced by "xxxxx" (net/url's Redacted);
// anything that is not such a URL is returned as is.
func RedactSource(src string) string {
	if !strings.Contains(src, "://") || !strings.Contains(src, "@") {
		return src
	}
	u, err := url.Parse(src)
	if err != nil || u.User == nil {
		return src
	}
	return u.Redacted()
}

// Patch changes some fields of a Spec (the body of PATCH /v1/streams/{stream} and of the NATS
// "patch" operation): a field present in the JSON document is set, an absent or null one is
// left as it is. The name cannot change.
type Patch struct {
	Name        *string  `json:"name,omitempty"`
	Source      *string  `json:"source,omitempty"`
	Node        *string  `json:"node,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
	FPS         *float64 `json:"fps,omitempty"`
	MaxWidth    *int     `json:"max_width,omitempty"`
	MaxHeight   *int     `json:"max_height,omitempty"`
	JPEGQuality *int     `json:"jpeg_quality,omitempty"`
	Loop        *bool    `json:"loop,omitempty"`
	Realtime    *bool    `json:"realtime,omitempty"`
}

// Apply returns s with the patch's fields set. It does not validate the result; a Name that
// differs from s.Name is an error (streams are not renamed: create the new one, delete the old).
func (p Patch) Apply(s Spec) (Spec, error) {
	if p.Name != nil && *p.Name != s.Name {
		return s, fmt.Errorf("%w: a patch cannot rename stream %s (create the new stream and delete the old one)", ErrInvalid, s.Name)
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.Source, p.Source)
	set(&s.Node, p.Node)
	if p.Enabled != nil {
		s.Enabled = *p.Enabled
	}
	if p.FPS != nil {
		s.FPS = *p.FPS
	}
	for _, f := range []struct {
		dst *int
		v   *int
	}{{&s.MaxWidth, p.MaxWidth}, {&s.MaxHeight, p.MaxHeight}, {&s.JPEGQuality, p.JPEGQuality}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if p.Loop != nil {
		s.Loop = *p.Loop
	}
	if p.Realtime != nil {
		s.Realtime = *p.Realtime
	}
	return s, nil
}

// Stream states, as Status.State and the ingest_stream_state metric name them.
const (
	// StateConnecting: the source is being opened (a network stream connecting).
	StateConnecting = "connecting"
	// StateLive: frames are being read and published (a push stream: ready for frames).
	StateLive = "live"
	// StateBackoff: the source failed (Status.Error says why); it is retried after a delay.
	StateBackoff = "backoff"
	// StateEnded: a finite source (a file without loop) reached its end; the stream is idle until
	// its configuration changes or it is disabled and enabled again.
	StateEnded = "ended"
	// StateDisabled: the stream is configured but disabled.
	StateDisabled = "disabled"
	// StateStopped: the runner is stopping (the stream was just deleted or moved).
	StateStopped = "stopped"
	// StateElsewhere: the stream is assigned to another ingest node (Spec.Node).
	StateElsewhere = "elsewhere"
)

// RunStatus is what a Runner reports about one stream it runs.
type RunStatus struct {
	// State is one of the State constants.
	State string
	// Error is the last failure ("" if none), with URL passwords redacted.
	Error string
	// Decoded, Published and Dropped count frames since the stream started on this process.
	// Dropped counts frames lost (replaced by a newer live frame, not encoded, not published,
	// invalid or refused pushed images); SampledOut counts those skipped by design, sampling the
	// source down to FPS. Decoded = Published + Dropped + SampledOut, frames in hand aside.
	Decoded, Published, Dropped, SampledOut uint64
	// Reconnects counts the times a live source was reopened after a failure.
	Reconnects uint64
	// FPS is the published rate over the last frames; 0 when idle.
	FPS float64
	// Width and Height are the last published frame's size; 0 before the first.
	Width, Height int
	// LastPublished is when the last frame was published; zero before the first.
	LastPublished time.Time
}

// RunStats is RunStatus's counters in a Status.
type RunStats struct {
	Decoded       uint64     `json:"decoded"`
	Published     uint64     `json:"published"`
	Dropped       uint64     `json:"dropped"`
	SampledOut    uint64     `json:"sampled_out"`
	Reconnects    uint64     `json:"reconnects"`
	FPS           float64    `json:"fps"`
	Width         int        `json:"width"`
	Height        int        `json:"height"`
	LastPublished *time.Time `json:"last_published,omitempty"`
}

// Status is one stream as the API shows it: its configuration (source redacted), its revision in
// the store, whether this ingest runs it, its state and counters.
type Status struct {
	Spec
	// Revision is the configuration's revision in the store; give it as If-Match (HTTP) or
	// "revision" (NATS) to change the stream only if nobody changed it since.
	Revision uint64 `json:"revision"`
	// RunsHere reports whether the ingest that answered runs this stream (see the package
	// comment); when false, State is StateElsewhere and there are no Stats.
	RunsHere bool `json:"runs_here"`
	// State is one of the State constants.
	State string `json:"state"`
	// Error is the last failure, if any.
	Error string `json:"error,omitempty"`
	// Stats are the counters of the ingest that answered, when it runs the stream.
	Stats *RunStats `json:"stats,omitempty"`
}

// PushResult is what a Runner did with one pushed image.
type PushResult struct {
	// Published reports whether the image was published; false when it was sampled out (the
	// stream's FPS is lower than the rate images arrive at).
	Published bool `json:"published"`
	// Seq is the published frame's sequence number (0 when not published).
	Seq uint64 `json:"seq,omitempty"`
	// Width and Height are the published frame's size (after scaling down).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Reason says why the image was not published ("sampled").
	Reason string `json:"reason,omitempty"`
}

// Runner runs streams: ingest.Manager implements it. The Registry calls Apply and Remove from one
// goroutine, in the order of the store's revisions; every method is safe for concurrent use.
type Runner interface {
	// CheckSource checks the form of a non-push source (see SourceChecker).
	CheckSource(source string) error
	// Apply makes the stream run as spec says (a valid Spec with defaults set), starting it,
	// changing it in place (rate, size, quality) or restarting it (source changed), or stopping
	// it when disabled. It does not block: the change is carried out in the background.
	Apply(spec Spec)
	// Remove stops the stream and forgets it. It does not block (see Settle).
	Remove(name string)
	// Settle waits until the latest Apply or Remove of the stream has been carried out: the
	// source opened or being opened, or the runner stopped and its goroutines joined. It returns
	// nil at once for a stream the Runner does not know, or ctx's error.
	Settle(ctx context.Context, name string) error
	// Status reports a stream the Runner knows.
	Status(name string) (RunStatus, bool)
	// Push publishes one encoded image (JPEG or PNG, already checked by CheckImage) on a push
	// stream as the frame captured at captured. Errors wrap ErrNotFound (no such push stream
	// running here), ErrImage (the image does not decode) or ErrBusy (too many images of this
	// stream in progress).
	Push(ctx context.Context, name string, image []byte, captured time.Time) (PushResult, error)
}

// Errors the package's operations wrap; the HTTP API and the NATS replies turn them into codes.
var (
	// ErrInvalid: a stream configuration, request or file is malformed or out of bounds.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no such stream.
	ErrNotFound = errors.New("no such stream")
	// ErrExists: a stream of that name exists already (create).
	ErrExists = errors.New("stream exists")
	// ErrConflict: the stream's revision is not the one given (If-Match, "revision").
	ErrConflict = errors.New("revision mismatch")
	// ErrImage: a pushed body is not an acceptable JPEG or PNG.
	ErrImage = errors.New("invalid image")
	// ErrTooLarge: a pushed image has more pixels than allowed.
	ErrTooLarge = errors.New("image too large")
	// ErrBusy: a push stream has too many images in progress; retry later.
	ErrBusy = errors.New("stream busy")
	// ErrLimit: the store holds the most streams allowed.
	ErrLimit = errors.New("too many streams")
)
