package streams

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
)

const goodFile = `# streams of the lobby
streams:
  - name: lobby
    source: rtsp://admin:secret@10.0.0.7/stream1
    fps: 2.5
    max_width: 640
    max_height: 480
    jpeg_quality: 70
    node: edge-1
  - name: door
    source: push
  - name: archive
    source: /data/archive.mp4
    enabled: false
    loop: true
    realtime: true
`

func TestParseFile(t *testing.T) {
	specs, err := ParseFile([]byte(goodFile), checkSource)
	if err != nil {
		t.Fatal(err)
	}
	want := []Spec{
		{Name: "lobby", Source: "rtsp://admin:secret@10.0.0.7/stream1", Node: "edge-1", Enabled: true, FPS: 2.5, MaxWidth: 640, MaxHeight: 480, JPEGQuality: 70},
		{Name: "door", Source: PushSource, Enabled: true, FPS: DefaultFPS, MaxWidth: DefaultMaxWidth, MaxHeight: DefaultMaxHeight, JPEGQuality: DefaultJPEGQuality},
		{Name: "archive", Source: "/data/archive.mp4", Enabled: false, FPS: DefaultFPS, MaxWidth: DefaultMaxWidth, MaxHeight: DefaultMaxHeight,
			JPEGQuality: DefaultJPEGQuality, Loop: true, Realtime: true},
	}
	if len(specs) != len(want) {
		t.Fatalf("got %d streams, want %d: %+v", len(specs), len(want), specs)
	}
	for i := range want {
		if specs[i] != want[i] {
			t.Errorf("stream %d:\n got %+v\nwant %+v", i, specs[i], want[i])
		}
	}
	if got := specs[0].Redacted().Source; got != "rtsp://admin:xxxxx@10.0.0.7/stream1" {
		t.Errorf("redacted source %q", got)
	}
	// An empty list is a valid file; LoadFile names the file in its errors.
	for _, empty := range []string{"streams: []\n", "streams:\n"} {
		if specs, err := ParseFile([]byte(empty), checkSource); err != nil || len(specs) != 0 {
			t.Errorf("%q: %v %v", empty, specs, err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "streams.yaml")
	if err := os.WriteFile(path, []byte(goodFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if specs, err := LoadFile(path, checkSource); err != nil || len(specs) != 3 {
		t.Fatalf("LoadFile: %v %v", specs, err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml"), checkSource); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("LoadFile of a missing file: %v", err)
	}
}

// fileErrorCases are streams files every one of which must be refused with a message holding
// want; they seed FuzzParseFile.
var fileErrorCases = []struct{ name, yaml, want string }{
	{"empty", "", "empty file"},
	{"not yaml", "streams: [", "YAML"},
	{"tabs", "streams:\n\t- name: x", "YAML"},
	{"no streams key", "cameras: []\n", `unknown key "cameras"`},
	{"scalar root", "just text\n", "want a mapping"},
	{"streams not a list", "streams: {name: x}\n", "must be a list"},
	{"item not a mapping", "streams: [lobby]\n", "want a mapping"},
	{"unknown key", "streams:\n  - name: a\n    source: push\n    fsp: 5\n", `line 4: streams[0]: unknown key "fsp"`},
	{"duplicate key", "streams:\n  - name: a\n    source: push\n    name: b\n", `key "name" given twice`},
	{"duplicate stream", "streams:\n  - {name: a, source: push}\n  - {name: a, source: /x.mp4}\n", "already defined on line 2"},
	{"wildcard name", "streams:\n  - {name: 'a.>', source: push}\n", "invalid stream name"},
	{"long name", "streams:\n  - {name: " + strings.Repeat("x", 10240) + ", source: push}\n", "10240 characters long"},
	{"empty name", "streams:\n  - {source: push}\n", "empty"},
	{"no source", "streams:\n  - {name: a}\n", "source: empty"},
	{"bad scheme", "streams:\n  - {name: a, source: 'gopher://x/y'}\n", "unsupported URL scheme"},
	{"control char", "streams:\n  - {name: a, source: \"/x\\u0007.mp4\"}\n", "control character"},
	{"fps negative", "streams:\n  - {name: a, source: push, fps: -1}\n", "fps -1 outside"},
	{"fps huge", "streams:\n  - {name: a, source: push, fps: 1000}\n", "fps 1000 outside"},
	{"fps text", "streams:\n  - {name: a, source: push, fps: fast}\n", "cannot unmarshal"},
	{"width small", "streams:\n  - {name: a, source: push, max_width: 4}\n", "max size 4x720"},
	{"quality", "streams:\n  - {name: a, source: push, jpeg_quality: 101}\n", "jpeg_quality 101"},
	{"bad node", "streams:\n  - {name: a, source: push, node: 'edge 1'}\n", "node name"},
	{"loop on push", "streams:\n  - {name: a, source: push, loop: true}\n", "loop and realtime"},
	{"two documents", "streams: []\n---\nstreams: []\n", "more than one YAML document"},
	{"streams twice", "streams: []\nstreams: []\n", "given twice"},
	{"alias bomb", aliasBomb(), "nodes"},
}

// aliasBomb is a billion-laughs document: each level refers to the previous one ten times.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + itoa(i) + ": &a" + itoa(i) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	b.WriteString("streams: []\n")
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestParseFileErrors(t *testing.T) {
	for _, c := range fileErrorCases {
		t.Run(c.name, func(t *testing.T) {
			specs, err := ParseFile([]byte(c.yaml), checkSource)
			if err == nil {
				t.Fatalf("accepted: %+v", specs)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, frame.ErrInvalidStream) {
				t.Errorf("error %v wraps neither ErrInvalid nor frame.ErrInvalidStream", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error of %d bytes: messages must stay short", len(err.Error()))
			}
		})
	}
	if _, err := ParseFile(make([]byte, MaxFileBytes+1), checkSource); err == nil {
		t.Error("a file over MaxFileBytes was accepted")
	}
}

func TestDecodeSpecAndPatch(t *testing.T) {
	s, err := DecodeSpec([]byte(`{"name":"a","source":"push"}`))
	if err != nil || !s.Enabled || s.Name != "a" {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = DecodeSpec([]byte(`{"name":"a","source":"push","enabled":false}`))
	if err != nil || s.Enabled {
		t.Fatalf("enabled false: %+v %v", s, err)
	}
	for body, want := range map[string]string{
		``:                             "empty body",
		`[]`:                           "must be a JSON object",
		`{"name":"a","colour":"red"}`:  `unknown field "colour"`,
		`{"name":"a"} {"name":"b"}`:    "data after the object",
		`{"name":"a","fps":"fast"}`:    `field "fps"`,
		`{"name":`:                     "JSON",
		strings.Repeat(" ", 70<<10):    "exceeds",
		`{"name":"a","max_width":1.5}`: `field "max_width"`,
	} {
		if _, err := DecodeSpec([]byte(body)); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeSpec(%.40q): %v, want ErrInvalid saying %q", body, err, want)
		}
	}
	base := Spec{Name: "a", Source: "/x.mp4", Enabled: true, FPS: 5, MaxWidth: 1280, MaxHeight: 720, JPEGQuality: 80}
	p, err := DecodePatch([]byte(`{"fps":2,"enabled":false,"max_width":320,"source":null}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Apply(base)
	if err != nil {
		t.Fatal(err)
	}
	if got.FPS != 2 || got.Enabled || got.MaxWidth != 320 || got.Source != "/x.mp4" || got.MaxHeight != 720 {
		t.Fatalf("patched: %+v", got)
	}
	p, _ = DecodePatch([]byte(`{"name":"b"}`))
	if _, err := p.Apply(base); err == nil || !strings.Contains(err.Error(), "rename") {
		t.Fatalf("rename by patch: %v", err)
	}
	if _, err := DecodePatch([]byte(`{"fps":1,"speed":2}`)); err == nil {
		t.Fatal("a patch with an unknown field was accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Spec{Name: "a", Source: "rtsp://h/x", Enabled: true}
	ok.SetDefaults()
	if err := ok.Validate(checkSource); err != nil {
		t.Fatal(err)
	}
	nan := ok
	nan.FPS = nan.FPS * 0
	nan.FPS /= nan.FPS // NaN
	for name, s := range map[string]Spec{
		"nan fps":   nan,
		"long src":  {Name: "a", Source: "/" + strings.Repeat("x", MaxSourceLen), FPS: 5, MaxWidth: 100, MaxHeight: 100, JPEGQuality: 50},
		"bad utf8":  {Name: "a", Source: "/x\xff", FPS: 5, MaxWidth: 100, MaxHeight: 100, JPEGQuality: 50},
		"huge size": {Name: "a", Source: "/x", FPS: 5, MaxWidth: 100000, MaxHeight: 100, JPEGQuality: 50},
		"long node": {Name: "a", Source: "/x", Node: strings.Repeat("n", 65), FPS: 5, MaxWidth: 100, MaxHeight: 100, JPEGQuality: 50},
	} {
		if err := s.Validate(checkSource); err == nil {
			t.Errorf("%s: accepted %+v", name, s)
		}
	}
}

func TestParseRequest(t *testing.T) {
	good := map[string]string{
		`{"op":"list"}`:                                                  OpList,
		`{"op":"get","name":"a"}`:                                        OpGet,
		`{"op":"delete","name":"a","revision":3}`:                        OpDelete,
		`{"op":"create","stream":{"name":"a","source":"push"}}`:          OpCreate,
		`{"op":"put","name":"a","stream":{"name":"a","source":"push"}}`:  OpPut,
		`{"op":"patch","name":"a","stream":{"fps":2},"revision":7}`:      OpPatch,
		`{"op":"put","stream":{"name":"a","source":"/x.mp4","fps":1.5}}`: OpPut,
	}
	for body, op := range good {
		r, err := ParseRequest([]byte(body))
		if err != nil || r.Op != op || r.Name != "a" && op != OpList {
			t.Errorf("ParseRequest(%s): %+v %v", body, r, err)
		}
	}
	for _, c := range requestErrorCases {
		if _, err := ParseRequest([]byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseRequest(%.60s): %v, want an error saying %q", c.body, err, c.want)
		}
	}
}

var requestErrorCases = []struct{ body, want string }{
	{`{}`, `no "op"`},
	{`{"op":"frobnicate"}`, "unknown op"},
	{`{"op":"list","name":"a"}`, "list takes no"},
	{`{"op":"get"}`, "empty"},
	{`{"op":"get","name":"a.>"}`, "invalid stream name"},
	{`{"op":"get","name":"` + strings.Repeat("x", 10240) + `"}`, "10240 characters long"},
	{`{"op":"get","name":"a","stream":{}}`, "takes a name"},
	{`{"op":"create"}`, `needs "stream"`},
	{`{"op":"put","name":"b","stream":{"name":"a","source":"push"}}`, "differs"},
	{`{"op":"put","stream":{"name":"a","source":"push","extra":1}}`, "unknown field"},
	{`{"op":"patch","name":"a"}`, `needs "stream"`},
	{`{"op":"patch","name":"a","stream":{"fps":"x"}}`, `field "fps"`},
	{`{"op":"list"}x`, "data after"},
	{`not json`, "JSON"},
}

func TestCheckImage(t *testing.T) {
	dir := filepath.Join(testData(t), "detect")
	for file, want := range map[string]string{"two_people.jpg": "jpeg", "obama_32bit.png": "png"} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		format, w, h, err := CheckImage(data, 0)
		if err != nil || format != want || w <= 0 || h <= 0 {
			t.Errorf("%s: %s %dx%d %v", file, format, w, h, err)
		}
		if _, _, _, err := CheckImage(data, w*h-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s with a pixel limit below its size: %v", file, err)
		}
		if _, _, _, err := CheckImage(data[:20], 0); !errors.Is(err, ErrImage) {
			t.Errorf("%s cut to 20 bytes: %v", file, err)
		}
	}
	if _, _, _, err := CheckImage(hugePNG(50000, 50000), 0); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "50000x50000") {
		t.Errorf("50000x50000 PNG header: %v", err)
	}
	for _, garbage := range [][]byte{nil, []byte("hello"), []byte("GIF89a......"), []byte("\xff\xd8\xff garbage")} {
		if _, _, _, err := CheckImage(garbage, 0); !errors.Is(err, ErrImage) {
			t.Errorf("CheckImage(%q): %v", garbage, err)
		}
	}
}

// hugePNG is a PNG signature and IHDR chunk (with its CRC) declaring w x h pixels, and nothing else.
func hugePNG(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = append(b, byte(w>>24), byte(w>>16), byte(w>>8), byte(w), byte(h>>24), byte(h>>16), byte(h>>8), byte(h), 8, 2, 0, 0, 0)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[12:]))
}

func TestParseCaptured(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	if got, err := ParseCaptured("", now); err != nil || !got.Equal(now) {
		t.Fatalf("empty: %v %v", got, err)
	}
	in := now.Add(-time.Second)
	if got, err := ParseCaptured(strconv.FormatInt(in.UnixNano(), 10), now); err != nil || !got.Equal(in) {
		t.Fatalf("a second ago: %v %v", got, err)
	}
	for _, bad := range []string{"x", "1.5", strconv.FormatInt(now.Add(time.Hour).UnixNano(), 10), strconv.FormatInt(now.Add(-48*time.Hour).UnixNano(), 10), "99999999999999999999"} {
		if _, err := ParseCaptured(bad, now); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCaptured(%q): %v", bad, err)
		}
	}
}
