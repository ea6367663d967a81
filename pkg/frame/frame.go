// Package frame defines the wire format of a video frame on the bus: a NATS message on
// vigil.frames.<stream> whose headers carry the stream id, sequence number, capture time, frame
// size, image scale and encoding, and whose payload is the encoded image (JPEG by default).
//
// The package is pure Go; it never decodes the image itself.
package frame

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names used on frame messages. They are part of the wire format: renaming one is a
// breaking change.
const (
	HeaderStream   = "Vigil-Stream"
	HeaderSeq      = "Vigil-Seq"
	HeaderCaptured = "Vigil-Captured" // Unix nanoseconds, decimal
	HeaderWidth    = "Vigil-Width"
	HeaderHeight   = "Vigil-Height"
	HeaderEncoding = "Vigil-Encoding"
	// HeaderHeads asks analyzers to run these on-demand heads on this frame (comma-separated
	// head names). Set by ingest when the track stage asks for a stream's next frame.
	HeaderHeads = "Vigil-Heads"
	// HeaderComplete, set to "1", marks a frame of a recording analysed completely (ingest
	// --once): analyzers queue it behind the stream's earlier frames instead of letting it
	// supersede them (see Frame.Complete).
	HeaderComplete = "Vigil-Complete"
	// HeaderScale, when above 1, says the encoded image is the frame's size divided by it (see
	// Frame.Scale).
	HeaderScale = "Vigil-Scale"
)

// MaxScale bounds Frame.Scale.
const MaxScale = 4

// ReduceFromWidth is the width from which ingest publishes a frame that requests no heads at
// ReducedScale unless told to publish full frames (and from which an analyzer decodes a full
// one that requests none at that scale): half of it still exceeds twice the detector's 320-pixel
// input, so detection sees what it would in the full frame, and the heads, which need the
// pixels, only run on frames that request them.
const ReduceFromWidth = 1280

// ReducedScale is the Scale of a frame published reduced: half size.
const ReducedScale = 2

// ScaledSize is the size of a w x h frame's image at scale: each side divided by scale, rounded
// up.
func ScaledSize(w, h, scale int) (int, int) {
	scale = max(scale, 1)
	return (w + scale - 1) / scale, (h + scale - 1) / scale
}

// MaxHeads bounds the on-demand heads one frame may request.
const MaxHeads = 16

// AddHeads returns heads with those of more appended that it lacks, up to MaxHeads in all. heads
// may be extended in place (pass a clone to keep it).
func AddHeads(heads, more []string) []string {
	for _, h := range more {
		if !slices.Contains(heads, h) && len(heads) < MaxHeads {
			heads = append(heads, h)
		}
	}
	return heads
}

// Encodings a frame payload may use.
const (
	EncodingJPEG = "jpeg"
	EncodingPNG  = "png"
)

// MaxStreamLen is the longest stream id accepted.
const MaxStreamLen = 64

// MaxDimension bounds the width and height a frame header may declare.
const MaxDimension = 16384

// ErrInvalidStream is wrapped by every error ValidateStream returns.
var ErrInvalidStream = errors.New("invalid stream name")

// ErrMalformed is wrapped by every error FromMsg returns for a message that is not a valid frame.
var ErrMalformed = errors.New("malformed frame message")

// ErrStreamMismatch is wrapped (with ErrMalformed) by FromMsg's error for a frame whose
// Vigil-Stream header names another stream than its subject: the subject is what NATS
// permissions guard, so a publisher allowed only vigil.frames.cam1 cannot speak for cam2.
var ErrStreamMismatch = errors.New("the Vigil-Stream header disagrees with the subject")

// SubjectStream returns the stream a frame subject names: the last token of a subject of
// several tokens (vigil.frames.<stream>), "" for a single-token subject or an invalid id.
func SubjectStream(subject string) string {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 || ValidateStream(subject[i+1:]) != nil {
		return ""
	}
	return subject[i+1:]
}

// ValidateStream reports whether name is a valid stream id: 1 to 64 characters from
// [A-Za-z0-9_-]. Only validated ids are ever placed in a NATS subject, so a stream id can never
// add subject tokens or wildcards.
func ValidateStream(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty (use 1-%d characters from A-Z a-z 0-9 _ -)", ErrInvalidStream, MaxStreamLen)
	}
	if len(name) > MaxStreamLen {
		return fmt.Errorf("%w: %d characters long (at most %d)", ErrInvalidStream, len(name), MaxStreamLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q has %q at byte %d (use A-Z a-z 0-9 _ -)", ErrInvalidStream, name, c, i)
		}
	}
	return nil
}

// Frame is one sampled, encoded video frame.
type Frame struct {
	// Stream is the validated stream id.
	Stream string
	// Seq numbers the frames published for Stream, starting at 1 and without gaps at the source.
	Seq uint64
	// Captured is when the frame was decoded from its source.
	Captured time.Time
	// Width and Height are the frame's size in pixels: the coordinates its results use. The
	// encoded image is that size at Scale (ImageSize).
	Width, Height int
	// Scale is 1 (or 0) for an image of the frame's own size, k for one published at 1/k of it
	// (ScaledSize), up to MaxScale.
	Scale int
	// Encoding names the payload format (EncodingJPEG or EncodingPNG).
	Encoding string
	// Data is the encoded image.
	Data []byte
	// Heads lists on-demand heads requested for this frame (see HeaderHeads); usually empty.
	Heads []string
	// Complete is true for a frame of a recording that must be analysed completely (every
	// frame, in order; ingest bounds its frames in flight). False for live frames, which
	// analyzers may supersede by a newer frame of the same stream (see HeaderComplete).
	Complete bool
}

// ImageSize is the size of the encoded image: the frame's size at its Scale.
func (f Frame) ImageSize() (int, int) { return ScaledSize(f.Width, f.Height, f.Scale) }

// Validate checks every field a receiver relies on.
func (f Frame) Validate() error {
	if err := ValidateStream(f.Stream); err != nil {
		return err
	}
	if f.Seq == 0 {
		return fmt.Errorf("%w: sequence 0", ErrMalformed)
	}
	if f.Width <= 0 || f.Height <= 0 || f.Width > MaxDimension || f.Height > MaxDimension {
		return fmt.Errorf("%w: size %dx%d outside 1..%d", ErrMalformed, f.Width, f.Height, MaxDimension)
	}
	if f.Encoding != EncodingJPEG && f.Encoding != EncodingPNG {
		return fmt.Errorf("%w: unknown encoding %q", ErrMalformed, f.Encoding)
	}
	if f.Scale < 0 || f.Scale > MaxScale {
		return fmt.Errorf("%w: scale %d outside 1..%d", ErrMalformed, f.Scale, MaxScale)
	}
	if len(f.Data) == 0 {
		return fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	if len(f.Heads) > MaxHeads {
		return fmt.Errorf("%w: %d heads requested (at most %d)", ErrMalformed, len(f.Heads), MaxHeads)
	}
	for _, h := range f.Heads {
		if err := validHeadName(h); err != nil {
			return err
		}
	}
	return nil
}

// validHeadName accepts lower-case names of 1-32 letters, digits, '_' and '-'. Whether the head
// exists is the analyzer's business; unknown heads are ignored there.
func validHeadName(h string) error {
	if h == "" || len(h) > 32 {
		return fmt.Errorf("%w: head name %q", ErrMalformed, h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: head name %q", ErrMalformed, h)
		}
	}
	return nil
}

// Msg builds the NATS message for f on subject. It validates f first, and refuses a subject of
// several tokens whose last one is not f.Stream (FromMsg would refuse the message).
func (f Frame) Msg(subject string) (*nats.Msg, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if strings.Contains(subject, ".") && SubjectStream(subject) != f.Stream {
		return nil, fmt.Errorf("%w: stream %s on subject %q", ErrStreamMismatch, f.Stream, subject)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(HeaderStream, f.Stream)
	m.Header.Set(HeaderSeq, strconv.FormatUint(f.Seq, 10))
	m.Header.Set(HeaderCaptured, strconv.FormatInt(f.Captured.UnixNano(), 10))
	m.Header.Set(HeaderWidth, strconv.Itoa(f.Width))
	m.Header.Set(HeaderHeight, strconv.Itoa(f.Height))
	m.Header.Set(HeaderEncoding, f.Encoding)
	if len(f.Heads) > 0 {
		m.Header.Set(HeaderHeads, strings.Join(f.Heads, ","))
	}
	if f.Complete {
		m.Header.Set(HeaderComplete, "1")
	}
	if f.Scale > 1 {
		m.Header.Set(HeaderScale, strconv.Itoa(f.Scale))
	}
	m.Data = f.Data
	return m, nil
}

// FromMsg parses a frame message. The returned Frame's Data aliases m.Data. Every error wraps
// ErrMalformed or ErrInvalidStream.
//
// The stream is the subject's: on a subject of several tokens (vigil.frames.<stream>) its last
// token must be a valid stream id, and a Vigil-Stream header, when present, must name the same
// stream, else the error wraps ErrStreamMismatch. Only a single-token subject (a message built
// in memory) takes the stream from the header alone.
func FromMsg(m *nats.Msg) (Frame, error) {
	if m == nil || m.Header == nil {
		return Frame{}, fmt.Errorf("%w: no headers", ErrMalformed)
	}
	var f Frame
	var err error
	f.Stream = m.Header.Get(HeaderStream)
	if strings.Contains(m.Subject, ".") {
		subj := SubjectStream(m.Subject)
		if subj == "" {
			return Frame{}, fmt.Errorf("%w: subject %q does not end in a stream id", ErrInvalidStream, truncate(m.Subject, 80))
		}
		if f.Stream != "" && f.Stream != subj {
			return Frame{}, fmt.Errorf("%w: %w: header %q, subject stream %s", ErrMalformed, ErrStreamMismatch, truncate(f.Stream, 80), subj)
		}
		f.Stream = subj
	}
	if err := ValidateStream(f.Stream); err != nil {
		return Frame{}, err
	}
	if f.Seq, err = strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64); err != nil {
		return Frame{}, fmt.Errorf("%w: %s: %w", ErrMalformed, HeaderSeq, err)
	}
	ns, err := strconv.ParseInt(m.Header.Get(HeaderCaptured), 10, 64)
	if err != nil {
		return Frame{}, fmt.Errorf("%w: %s: %w", ErrMalformed, HeaderCaptured, err)
	}
	f.Captured = time.Unix(0, ns)
	if f.Width, err = strconv.Atoi(m.Header.Get(HeaderWidth)); err != nil {
		return Frame{}, fmt.Errorf("%w: %s: %w", ErrMalformed, HeaderWidth, err)
	}
	if f.Height, err = strconv.Atoi(m.Header.Get(HeaderHeight)); err != nil {
		return Frame{}, fmt.Errorf("%w: %s: %w", ErrMalformed, HeaderHeight, err)
	}
	f.Encoding = m.Header.Get(HeaderEncoding)
	if h := m.Header.Get(HeaderHeads); h != "" {
		f.Heads = strings.Split(h, ",")
	}
	f.Complete = m.Header.Get(HeaderComplete) == "1"
	if v := m.Header.Get(HeaderScale); v != "" {
		if f.Scale, err = strconv.Atoi(v); err != nil || f.Scale < 1 {
			return Frame{}, fmt.Errorf("%w: %s %q", ErrMalformed, HeaderScale, truncate(v, 20))
		}
	}
	f.Data = m.Data
	if err := f.Validate(); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
