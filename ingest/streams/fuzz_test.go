package streams

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
)

// Every parser of outside input is fuzzed, seeded from the table tests (and the corpus under
// testdata/fuzz): the streams file, HTTP bodies (spec, patch), NATS requests, pushed image
// headers, capture times, If-Match and source redaction.

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(goodFile))
	for _, c := range fileErrorCases {
		if len(c.yaml) < 4096 {
			f.Add([]byte(c.yaml))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := ParseFile(data, checkSource)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, frame.ErrInvalidStream) {
				t.Fatalf("error %v wraps neither ErrInvalid nor frame.ErrInvalidStream", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range specs {
			if err := s.Validate(checkSource); err != nil {
				t.Fatalf("accepted an invalid stream %+v: %v", s, err)
			}
			if seen[s.Name] {
				t.Fatalf("stream %q accepted twice", s.Name)
			}
			seen[s.Name] = true
		}
	})
}

func FuzzDecodeSpec(f *testing.F) {
	for _, s := range []string{`{"name":"a","source":"push"}`, `{"name":"lobby","source":"rtsp://u:p@h/x","fps":2.5,"max_width":640,"max_height":480,"jpeg_quality":70,"node":"edge-1","enabled":false,"loop":true,"realtime":true}`,
		`{"name":"a","colour":"red"}`, `[]`, `{"fps":"x"}`, `{"name":"a"} {}`, `null`, `{"enabled":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSpec(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		s.SetDefaults()
		if s.Validate(checkSource) == nil && frame.ValidateStream(s.Name) != nil {
			t.Fatalf("validated a bad name %q", s.Name)
		}
	})
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{`{"fps":2,"enabled":false}`, `{"name":"b"}`, `{"max_width":320,"source":null}`, `{"speed":1}`, `{}`} {
		f.Add([]byte(s))
	}
	base := Spec{Name: "a", Source: "/x.mp4", Enabled: true, FPS: 5, MaxWidth: 1280, MaxHeight: 720, JPEGQuality: 80}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePatch(data)
		if err != nil {
			return
		}
		s, err := p.Apply(base)
		if err != nil {
			return
		}
		if s.Name != base.Name {
			t.Fatalf("a patch renamed the stream to %q", s.Name)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"op":"list"}`, `{"op":"get","name":"a"}`, `{"op":"create","stream":{"name":"a","source":"push"}}`,
		`{"op":"patch","name":"a","stream":{"fps":2},"revision":7}`, `{"op":"delete","name":"a","revision":3}`} {
		f.Add([]byte(s))
	}
	for _, c := range requestErrorCases {
		if len(c.body) < 4096 {
			f.Add([]byte(c.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			return
		}
		if r.Op != OpList && frame.ValidateStream(r.Name) != nil {
			t.Fatalf("op %s accepted with a bad name %q", r.Op, r.Name)
		}
		if (r.Op == OpCreate || r.Op == OpPut) && r.spec.Name != r.Name {
			t.Fatalf("op %s: name %q, stream.name %q", r.Op, r.Name, r.spec.Name)
		}
	})
}

func FuzzCheckImage(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "testdata", "detect", "no-faces.jpg")); err == nil {
		f.Add(b) // a real JPEG when the shared test data is there
	}
	f.Add(hugePNG(50000, 50000))
	f.Add(hugePNG(16, 16))
	f.Add([]byte("\xff\xd8\xff\xe0"))
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		format, w, h, err := CheckImage(data, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrImage) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrImage nor ErrTooLarge", err)
			}
			return
		}
		if format != "jpeg" && format != "png" || w <= 0 || h <= 0 || int64(w)*int64(h) > 1<<20 {
			t.Fatalf("accepted %s %dx%d", format, w, h)
		}
	})
}

func FuzzParseCaptured(f *testing.F) {
	for _, s := range []string{"", "1800000000000000000", "x", "-1", "99999999999999999999", "1.5"} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseCaptured(v, now)
		if err != nil {
			return
		}
		if got.After(now.Add(time.Minute)) || got.Before(now.Add(-24*time.Hour)) {
			t.Fatalf("accepted %v", got)
		}
	})
}

func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{"", "*", `"12"`, "12", `W/"3"`, "soon", `"0"`, `"18446744073709551616"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, _ = parseIfMatch(v)
	})
}

func FuzzRedactSource(f *testing.F) {
	for _, s := range []string{"rtsp://admin:secret@10.0.0.7/stream1", "/data/x.mp4", "http://u@h/", "rtsp://a:b@c:d@e/", "push"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out := RedactSource(src)
		u, err := url.Parse(src)
		if err != nil || u.User == nil || !strings.Contains(src, "://") {
			return
		}
		if p, ok := u.User.Password(); ok && len(p) >= 4 && p != "xxxxx" && strings.Contains(out, ":"+p+"@") {
			t.Fatalf("RedactSource(%q) = %q shows the password", src, out)
		}
	})
}
