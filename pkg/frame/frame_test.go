package frame

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestValidateStream(t *testing.T) {
	good := []string{"a", "cam-1", "Front_Door", strings.Repeat("x", MaxStreamLen)}
	for _, s := range good {
		if err := ValidateStream(s); err != nil {
			t.Errorf("ValidateStream(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"", "a.>", "a.b", "*", ">", "a b", "caf\u00e9", "x\x00", strings.Repeat("x", MaxStreamLen+1), strings.Repeat("y", 10240)}
	for _, s := range bad {
		err := ValidateStream(s)
		if !errors.Is(err, ErrInvalidStream) {
			t.Errorf("ValidateStream(%q) = %v, want ErrInvalidStream", s, err)
		}
	}
}

func sample() Frame {
	return Frame{Stream: "cam1", Seq: 7, Captured: time.Unix(1700000000, 123456789), Width: 640, Height: 480, Encoding: EncodingJPEG, Data: []byte{0xff, 0xd8, 1, 2}}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	in.Heads = []string{"emotion", "pose"}
	in.Scale = 2
	m, err := in.Msg("vigil.frames.cam1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := FromMsg(m)
	if err != nil {
		t.Fatal(err)
	}
	if out.Stream != in.Stream || out.Seq != in.Seq || !out.Captured.Equal(in.Captured) || out.Width != in.Width ||
		out.Height != in.Height || out.Encoding != in.Encoding || string(out.Data) != string(in.Data) ||
		strings.Join(out.Heads, ",") != "emotion,pose" || out.Scale != 2 {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	if w, h := out.ImageSize(); w != 320 || h != 240 {
		t.Fatalf("image of a 640x480 frame at scale 2: %dx%d, want 320x240", w, h)
	}
	if w, h := ScaledSize(1281, 721, 2); w != 641 || h != 361 {
		t.Fatalf("ScaledSize(1281, 721, 2) = %dx%d, want 641x361 (rounded up)", w, h)
	}
	in.Scale = 0
	if m, _ = in.Msg("s"); m.Header.Get(HeaderScale) != "" {
		t.Fatal("a full-size frame carries a scale header")
	}
	if out, _ = FromMsg(m); out.Scale != 0 {
		t.Fatalf("a frame without the header has scale %d", out.Scale)
	}
}

func TestFromMsgRejects(t *testing.T) {
	cases := map[string]func(h nats.Header, m *nats.Msg){
		"bad stream":   func(h nats.Header, _ *nats.Msg) { h.Set(HeaderStream, "a.>") },
		"no seq":       func(h nats.Header, _ *nats.Msg) { h.Del(HeaderSeq) },
		"zero seq":     func(h nats.Header, _ *nats.Msg) { h.Set(HeaderSeq, "0") },
		"neg width":    func(h nats.Header, _ *nats.Msg) { h.Set(HeaderWidth, "-3") },
		"huge height":  func(h nats.Header, _ *nats.Msg) { h.Set(HeaderHeight, "50000") },
		"bad captured": func(h nats.Header, _ *nats.Msg) { h.Set(HeaderCaptured, "yesterday") },
		"encoding":     func(h nats.Header, _ *nats.Msg) { h.Set(HeaderEncoding, "gif") },
		"empty":        func(_ nats.Header, m *nats.Msg) { m.Data = nil },
		"bad head":     func(h nats.Header, _ *nats.Msg) { h.Set(HeaderHeads, "emotion,Bad Head") },
		"many heads":   func(h nats.Header, _ *nats.Msg) { h.Set(HeaderHeads, strings.Repeat("a,", 40)+"a") },
		"zero scale":   func(h nats.Header, _ *nats.Msg) { h.Set(HeaderScale, "0") },
		"huge scale":   func(h nats.Header, _ *nats.Msg) { h.Set(HeaderScale, "5") },
		"word scale":   func(h nats.Header, _ *nats.Msg) { h.Set(HeaderScale, "half") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := sample().Msg("s")
			if err != nil {
				t.Fatal(err)
			}
			mutate(m.Header, m)
			if _, err := FromMsg(m); err == nil {
				t.Fatal("FromMsg accepted a malformed frame")
			} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidStream) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
		})
	}
	if _, err := FromMsg(&nats.Msg{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no headers: %v", err)
	}
}

func FuzzFromMsg(f *testing.F) {
	f.Add("cam1", "7", "1700000000123456789", "640", "480", "jpeg", "2", []byte{1})
	f.Add("a.>", "0", "", "-1", "x", "gif", "-1", []byte{})
	f.Fuzz(func(t *testing.T, stream, seq, captured, w, h, enc, scale string, data []byte) {
		m := nats.NewMsg("s")
		m.Header.Set(HeaderStream, stream)
		m.Header.Set(HeaderSeq, seq)
		m.Header.Set(HeaderCaptured, captured)
		m.Header.Set(HeaderWidth, w)
		m.Header.Set(HeaderHeight, h)
		m.Header.Set(HeaderEncoding, enc)
		if scale != "" {
			m.Header.Set(HeaderScale, scale)
		}
		m.Data = data
		fr, err := FromMsg(m)
		if err != nil {
			return
		}
		if err := fr.Validate(); err != nil {
			t.Fatalf("FromMsg returned an invalid frame: %v", err)
		}
		m2, err := fr.Msg("s")
		if err != nil {
			t.Fatalf("valid frame does not re-encode: %v", err)
		}
		if _, err := FromMsg(m2); err != nil {
			t.Fatalf("re-encoded frame does not parse: %v", err)
		}
	})
}

func FuzzValidateStream(f *testing.F) {
	for _, s := range []string{"cam1", "a.>", "", "*", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateStream(s) == nil && strings.ContainsAny(s, ".*> \t\r\n") {
			t.Fatalf("accepted %q", s)
		}
	})
}

// TestSubjectIsTheStream: on a frame subject the stream is the subject's; a header naming
// another stream is refused with ErrStreamMismatch, a missing header is filled from the subject.
func TestSubjectIsTheStream(t *testing.T) {
	m, err := sample().Msg("vigil.frames.cam1")
	if err != nil {
		t.Fatal(err)
	}
	m.Subject = "vigil.frames.cam2"
	if _, err := FromMsg(m); !errors.Is(err, ErrStreamMismatch) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("header cam1 on subject cam2: %v, want ErrStreamMismatch", err)
	}
	m.Header.Del(HeaderStream)
	if f, err := FromMsg(m); err != nil || f.Stream != "cam2" {
		t.Fatalf("no header on subject cam2: %+v %v", f, err)
	}
	m.Subject = "vigil.frames.a b"
	if _, err := FromMsg(m); !errors.Is(err, ErrInvalidStream) {
		t.Fatalf("invalid subject token: %v", err)
	}
	if _, err := sample().Msg("vigil.frames.cam9"); !errors.Is(err, ErrStreamMismatch) {
		t.Fatalf("Msg on another stream's subject: %v", err)
	}
	for subj, want := range map[string]string{"vigil.frames.x": "x", "x": "", "vigil.frames.": "", "a.b.c>": ""} {
		if got := SubjectStream(subj); got != want {
			t.Errorf("SubjectStream(%q) = %q, want %q", subj, got, want)
		}
	}
}

// FuzzFromMsgSubject: whatever the subject and header, an accepted frame's stream is the
// subject's last token (on a subject of several tokens) and re-encodes on that subject.
func FuzzFromMsgSubject(f *testing.F) {
	f.Add("vigil.frames.cam1", "cam1", true)
	f.Add("vigil.frames.cam1", "cam2", true)
	f.Add("vigil.frames.cam1", "", false)
	f.Add("cam1", "cam1", true)
	f.Add("vigil.frames.a.>", "a", true)
	f.Fuzz(func(t *testing.T, subject, header string, withHeader bool) {
		m, err := sample().Msg("s")
		if err != nil {
			t.Fatal(err)
		}
		m.Subject = subject
		if withHeader {
			m.Header.Set(HeaderStream, header)
		} else {
			m.Header.Del(HeaderStream)
		}
		fr, err := FromMsg(m)
		if err != nil {
			return
		}
		if strings.Contains(subject, ".") && fr.Stream != subject[strings.LastIndex(subject, ".")+1:] {
			t.Fatalf("subject %q gave stream %q", subject, fr.Stream)
		}
		if _, err := fr.Msg(subject); err != nil {
			t.Fatalf("accepted frame does not re-encode on its subject: %v", err)
		}
	})
}

func TestAddHeads(t *testing.T) {
	got := AddHeads([]string{"age"}, []string{"age", "pose", "pose"})
	if len(got) != 2 || got[0] != "age" || got[1] != "pose" {
		t.Fatalf("AddHeads = %v, want [age pose]", got)
	}
	var many []string
	for i := range MaxHeads + 5 {
		many = append(many, fmt.Sprintf("h%d", i))
	}
	if got := AddHeads(nil, many); len(got) != MaxHeads {
		t.Fatalf("AddHeads kept %d heads, want at most %d", len(got), MaxHeads)
	}
}
