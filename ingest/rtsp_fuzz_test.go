package ingest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rtspStatusSeeds = []string{
	"RTSP/1.0 200 OK\r\n",
	"RTSP/1.0 404 Not Found\r\n",
	"RTSP/2.0 401 Unauthorized",
	"RTSP/1.0 454 Session Not Found\n",
	"RTSP/1.0 200",
	"HTTP/1.1 400 Bad Request\r\n",
	"RTSP/1.0 99 Low",
	"RTSP/1.0 600 High",
	"RTSP/1.0 2OO OK",
	"RTSP/1.0 200 O\x00K",
	"RTSP/1.0",
	"",
}

func TestParseRTSPStatus(t *testing.T) {
	good := map[string]int{"RTSP/1.0 200 OK\r\n": 200, "RTSP/1.0 404 Not Found\r\n": 404,
		"RTSP/2.0 401 Unauthorized": 401, "RTSP/1.0 454 Session Not Found\n": 454, "RTSP/1.0 200": 200}
	for _, line := range rtspStatusSeeds {
		code, reason, err := parseRTSPStatus(line)
		want, ok := good[line]
		switch {
		case ok && (err != nil || code != want):
			t.Errorf("%q: %d %q %v, want %d", line, code, reason, err, want)
		case !ok && err == nil:
			t.Errorf("%q: accepted as %d %q", line, code, reason)
		}
	}
}

// FuzzParseRTSPStatus: any line is parsed or refused; what is accepted has a code in range and
// survives a round trip.
func FuzzParseRTSPStatus(f *testing.F) {
	for _, s := range rtspStatusSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, reason, err := parseRTSPStatus(line)
		if err != nil {
			return
		}
		if code < 100 || code > 599 {
			t.Fatalf("%q: code %d", line, code)
		}
		again, reason2, err := parseRTSPStatus(fmt.Sprintf("RTSP/1.0 %d %s\r\n", code, reason))
		if err != nil || again != code || (reason2 != reason && reason != "") {
			t.Fatalf("%q: round trip gave %d %q %v", line, again, reason2, err)
		}
	})
}

// FuzzGStreamerPipeline: whatever URL is given, an accepted pipeline carries it as one quoted
// value and nothing else: the element chain is always the fixed one.
func FuzzGStreamerPipeline(f *testing.F) {
	for _, s := range []string{"rtsp://cam/stream", "rtsps://u:p@cam:322/a?b=c", `rtsp://h/x"!fakesrc`,
		"rtsp://h/x!y", "http://h/x", "rtsp://h/a b", "rtsp://h/%22", "rtsp://[::1]:554/x", "rtsp://h/x?q='a'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		p, err := gstreamerPipeline(u, 2*time.Second)
		if err != nil {
			return
		}
		if strings.Count(p, `"`) != 2 || strings.Count(p, "!") != 6 || strings.Count(p, "'") != 0 || strings.Contains(p, `\`) {
			t.Fatalf("%q gave pipeline %q", raw, p)
		}
		loc := strings.TrimPrefix(p, `rtspsrc location="`)
		loc = loc[:strings.IndexByte(loc, '"')]
		if loc != u.String() || strings.ContainsAny(loc, " \t\r\n") {
			t.Fatalf("%q: location %q, want %q", raw, loc, u.String())
		}
	})
}

// FuzzClassifyLive: what Classify accepts as a network URL has a host and a valid port, and a
// device has an index >= 0 (the checks Open relies on before dialling).
func FuzzClassifyLive(f *testing.F) {
	for _, s := range []string{"/data/a.mp4", "file:///x.mp4", "file://", "rtsp://cam/s", "rtsps://u:p@cam:322/x",
		"http://cam/video.mjpg", "https://:80/x", "rtsp://h:99999/", "device:0", "device:-1", "/dev/video3",
		"/dev/videoX", "gopher://x", "", "rtsp://h/\x7f", "RTSP://CAM/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		kind, target, err := Classify(spec)
		if err != nil {
			return
		}
		switch kind {
		case KindNetwork:
			u, err := url.Parse(target)
			if err != nil || u.Hostname() == "" {
				t.Fatalf("%q accepted as a network URL without a host (%v)", spec, err)
			}
			if p := u.Port(); p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					t.Fatalf("%q accepted with port %q", spec, p)
				}
			}
		case KindDevice:
			if n, err := strconv.Atoi(target); err != nil || n < 0 {
				t.Fatalf("%q accepted as device %q", spec, target)
			}
		case KindFile:
			if target == "" {
				t.Fatalf("%q accepted as a file without a path", spec)
			}
		default:
			t.Fatalf("%q: kind %v", spec, kind)
		}
	})
}
