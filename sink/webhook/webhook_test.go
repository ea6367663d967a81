package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/event"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/sink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ sink.Sink = (*Sink)(nil)

var secret = []byte("s3cret")

// received is one request a test receiver accepted.
type received struct {
	header  http.Header
	payload Payload
}

// receiver is a real HTTP receiver that verifies signatures and parses payloads. Its status
// function decides each answer (nil: 200).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	status func(r *http.Request, n int) int
	gate   func(r *http.Request) // runs before answering; may block

	mu       sync.Mutex
	got      []received
	requests int
	active   int
	peak     int
	bad      []error
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.active++
	rc.peak = max(rc.peak, rc.active)
	rc.mu.Unlock()
	defer func() { rc.mu.Lock(); rc.active--; rc.mu.Unlock() }()
	body, err := VerifyRequest(r, secret, 0, 0)
	if err != nil {
		rc.fail(err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	p, err := ParsePayload(body)
	if err != nil {
		rc.fail(err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if rc.gate != nil {
		rc.gate(r)
	}
	code := http.StatusOK
	if rc.status != nil {
		code = rc.status(r, n)
	}
	if code/100 == 2 {
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), p})
		rc.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (rc *receiver) fail(err error) {
	rc.mu.Lock()
	rc.bad = append(rc.bad, err)
	rc.mu.Unlock()
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.bad) > 0 {
		rc.t.Fatalf("receiver refused requests: %v", rc.bad)
	}
	return append([]received(nil), rc.got...)
}

func newSink(t *testing.T, s *Sink) *Sink {
	t.Helper()
	if s.Secret == nil {
		s.Secret = secret
	}
	if s.InitialBackoff == 0 {
		s.InitialBackoff = time.Millisecond
	}
	s.jitter = func(d time.Duration) time.Duration { return d }
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func face(name string, score, sim float32) result.Face {
	f := result.Face{Score: score, Box: result.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}}
	if name != "" {
		f.Identity = &result.Identity{Name: name, Similarity: sim}
	}
	return f
}

func res(stream string, seq uint64, faces ...result.Face) result.Result {
	if faces == nil {
		faces = []result.Face{}
	}
	return result.Result{Schema: 1, Stream: stream, Seq: seq, Faces: faces,
		CapturedAt: time.Date(2026, 11, 22, 0, 5, 14, int(seq), time.UTC), Width: 640, Height: 480}
}

func testEvent(stream, kind, trackID string, id *result.Identity) event.Event {
	return event.Event{Schema: 1, Kind: kind, Stream: stream, TrackID: trackID, Seq: 7,
		Crop:     event.Crop{Stream: stream, Seq: 7, Box: result.Box{X1: 1, Y1: 1, X2: 9, Y2: 9}, Width: 64, Height: 48},
		Identity: id, Frames: 3}
}

// TestDelivers: signed results and events arrive in order with the documented headers; results
// without faces are filtered out; the snapshot travels with the event.
func TestDelivers(t *testing.T) {
	rc := newReceiver(t)
	s := newSink(t, &Sink{URL: rc.srv.URL, IncludeSnapshot: true, Headers: http.Header{"Authorization": {"Bearer k"}}})
	ctx := context.Background()
	for i := uint64(1); i <= 3; i++ {
		if err := s.Write(ctx, res("lobby", i, face("", 0.9, 0))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, res("lobby", 4)); err != nil { // no face: filtered
		t.Fatal(err)
	}
	jpeg := []byte{0xff, 0xd8, 0xff, 0xd9}
	ev := testEvent("lobby", event.KindRecognized, "t-1", &result.Identity{Name: "Ada", Similarity: 0.8})
	if err := s.WriteEvent(ctx, ev, jpeg); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 4 {
		t.Fatalf("received %d, want 4", len(got))
	}
	for i, g := range got[:3] {
		if g.payload.Type != TypeResult || g.payload.Result.Seq != uint64(i+1) {
			t.Fatalf("delivery %d: %+v", i, g.payload)
		}
		h := g.header
		if h.Get(HeaderType) != TypeResult || h.Get(HeaderDelivery) != g.payload.Delivery ||
			h.Get(HeaderAttempt) != "1" || h.Get("Authorization") != "Bearer k" || h.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", h)
		}
	}
	e := got[3].payload
	if e.Type != event.KindRecognized || e.Event.Identity.Name != "Ada" || string(e.Snapshot) != string(jpeg) {
		t.Fatalf("event payload %+v", e)
	}
	st := s.Stats()
	if st.Delivered != 4 || st.Filtered != 1 || st.Retries != 0 || st.DurationCount != 4 || st.InFlight != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s.Delivered() != 4 {
		t.Fatal("Delivered")
	}
}

// TestUnsigned: without a secret no signature header is sent.
func TestUnsigned(t *testing.T) {
	var sig, ts string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sig, ts = r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp)
	}))
	defer srv.Close()
	s := &Sink{URL: srv.URL}
	if err := s.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(context.Background(), res("a", 1, face("", 1, 0))); err != nil {
		t.Fatal(err)
	}
	if sig != "" || ts == "" {
		t.Fatalf("signature %q timestamp %q", sig, ts)
	}
}

// TestRetries: 503 and 429 are retried, each attempt signed afresh, until accepted.
func TestRetries(t *testing.T) {
	rc := newReceiver(t)
	rc.status = func(r *http.Request, n int) int {
		switch n {
		case 1:
			return http.StatusServiceUnavailable
		case 2:
			return http.StatusTooManyRequests
		}
		return http.StatusAccepted
	}
	s := newSink(t, &Sink{URL: rc.srv.URL})
	if err := s.Write(context.Background(), res("a", 1, face("", 1, 0))); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 1 || got[0].header.Get(HeaderAttempt) != "3" {
		t.Fatalf("received %+v", got)
	}
	if st := s.Stats(); st.Retries != 2 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestGivesUp: a receiver that keeps failing gets MaxAttempts attempts, then Write fails with
// ErrGaveUp; with Discard it counts and returns nil.
func TestGivesUp(t *testing.T) {
	for _, discard := range []bool{false, true} {
		rc := newReceiver(t)
		rc.status = func(*http.Request, int) int { return http.StatusInternalServerError }
		s := newSink(t, &Sink{URL: rc.srv.URL, MaxAttempts: 3, Discard: discard})
		err := s.Write(context.Background(), res("a", 1, face("", 1, 0)))
		if discard && err != nil || !discard && !errors.Is(err, ErrGaveUp) {
			t.Fatalf("discard %v: err %v", discard, err)
		}
		st := s.Stats()
		if rc.requests != 3 || st.GaveUp != 1 || st.Retries != 2 || st.Delivered != 0 || st.LastError == "" {
			t.Fatalf("discard %v: %d requests, stats %+v", discard, rc.requests, st)
		}
		if discard && st.Discarded != 1 {
			t.Fatalf("discarded %d", st.Discarded)
		}
	}
}

// TestRejects: answers retrying would not change (4xx, redirects) fail at once.
func TestRejects(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusFound} {
		var n int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			if code == http.StatusFound {
				http.Redirect(w, r, "/elsewhere", code)
				return
			}
			w.WriteHeader(code)
		}))
		s := newSink(t, &Sink{URL: srv.URL})
		err := s.Write(context.Background(), res("a", 1, face("", 1, 0)))
		if !errors.Is(err, ErrRejected) || n != 1 || s.Stats().Rejected != 1 {
			t.Errorf("status %d: err %v after %d requests", code, err, n)
		}
		_ = s.Close()
		srv.Close()
	}
}

// TestAttemptTimeout: a receiver that does not answer within Timeout counts as a failed attempt.
func TestAttemptTimeout(t *testing.T) {
	rc := newReceiver(t)
	rc.gate = func(r *http.Request) {
		if r.Header.Get(HeaderAttempt) == "1" {
			<-r.Context().Done() // hang until the client gives up
		}
	}
	s := newSink(t, &Sink{URL: rc.srv.URL, Timeout: 100 * time.Millisecond})
	if err := s.Write(context.Background(), res("a", 1, face("", 1, 0))); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Retries != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestOrderAndBounds: one delivery per stream at a time (the next waits, in order), different
// streams in parallel up to MaxInFlight, and QueueSize bounds the waiting.
func TestOrderAndBounds(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t)
	rc.gate = func(r *http.Request) { <-release }
	s := newSink(t, &Sink{URL: rc.srv.URL, MaxInFlight: 2, QueueSize: 4})
	ctx := context.Background()
	errs := make(chan error, 8)
	write := func(stream string, seq uint64) {
		go func() { errs <- s.Write(ctx, res(stream, seq, face("", 1, 0))) }()
	}
	inHandler := func() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.active }
	write("a", 1)
	testenv.Eventually(t, 10*time.Second, "a/1 in the receiver", func() bool { return inHandler() == 1 })
	write("a", 2) // waits for a/1: same stream
	testenv.Eventually(t, 10*time.Second, "a/2 queued", func() bool { return s.Stats().Queued == 2 })
	write("b", 1) // runs beside a/1
	testenv.Eventually(t, 10*time.Second, "b/1 in the receiver", func() bool { return inHandler() == 2 })
	write("c", 1) // waits: MaxInFlight 2
	testenv.Eventually(t, 10*time.Second, "c/1 queued", func() bool { return s.Stats().Queued == 4 })
	if err := s.Write(ctx, res("d", 1, face("", 1, 0))); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth write: %v, want ErrQueueFull", err)
	}
	if st := s.Stats(); st.InFlight != 2 || st.QueueFull != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := rc.received()
	var a []uint64
	for _, g := range got {
		if g.payload.Result.Stream == "a" {
			a = append(a, g.payload.Result.Seq)
		}
	}
	if len(got) != 4 || len(a) != 2 || a[0] != 1 || a[1] != 2 {
		t.Fatalf("received %d, stream a in order %v", len(got), a)
	}
	if rc.peak > 2 {
		t.Fatalf("%d requests at once, MaxInFlight 2", rc.peak)
	}
}

// TestCloseAborts: Close ends a delivery stuck in retries; the Write returns ErrClosed, and later
// writes too.
func TestCloseAborts(t *testing.T) {
	rc := newReceiver(t)
	rc.status = func(*http.Request, int) int { return http.StatusBadGateway }
	s := newSink(t, &Sink{URL: rc.srv.URL, MaxAttempts: 1000, InitialBackoff: time.Hour})
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), res("a", 1, face("", 1, 0))) }()
	testenv.Eventually(t, 10*time.Second, "the first attempt", func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.requests == 1 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Write during Close: %v", err)
	}
	if err := s.Write(context.Background(), res("a", 2, face("", 1, 0))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if st := s.Stats(); st.Aborted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCallerContext: the caller's context ends a delivery too.
func TestCallerContext(t *testing.T) {
	rc := newReceiver(t)
	rc.status = func(*http.Request, int) int { return http.StatusBadGateway }
	s := newSink(t, &Sink{URL: rc.srv.URL, MaxAttempts: 1000, InitialBackoff: time.Hour, Discard: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, res("a", 1, face("", 1, 0))) }()
	testenv.Eventually(t, 10*time.Second, "the first attempt", func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.requests == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v, want context.Canceled (never discarded)", err)
	}
}

func TestInitializeErrors(t *testing.T) {
	for _, s := range []*Sink{
		{},
		{URL: "ftp://example.com/x"},
		{URL: "http://"},
		{URL: "https://user:pw@example.com/hook"},
		{URL: "http://example.com", Filter: Filter{Types: []string{"face.sneezed"}}},
		{URL: "http://example.com", Filter: Filter{Streams: []string{"a.b"}}},
		{URL: "http://example.com", Filter: Filter{MinScore: 2}},
	} {
		if err := s.Initialize(); err == nil {
			_ = s.Close()
			t.Errorf("accepted %+v", s)
		}
	}
}

func TestFilter(t *testing.T) {
	ada := &result.Identity{Name: "Ada", Similarity: 0.8}
	weak := &result.Identity{Name: "Bob", Similarity: 0.3}
	r := res("lobby", 1, face("Ada", 0.95, 0.8), face("Bob", 0.9, 0.3), face("", 0.5, 0))
	for _, tc := range []struct {
		name   string
		f      Filter
		faces  int    // faces kept in r, -1: not delivered
		events []bool // appeared (no identity), recognized Ada, left Bob (weak)
	}{
		{"zero", Filter{}, 3, []bool{true, true, true}},
		{"stream", Filter{Streams: []string{"door"}}, -1, []bool{false, false, false}},
		{"types", Filter{Types: []string{event.KindRecognized}}, -1, []bool{false, true, false}},
		{"identified", Filter{Identified: true}, 2, []bool{false, true, true}},
		{"min similarity", Filter{Identified: true, MinSimilarity: 0.5}, 1, []bool{false, true, false}},
		{"identities", Filter{Identities: []string{"Bob"}}, 1, []bool{false, false, true}},
		{"min score", Filter{MinScore: 0.92}, 1, []bool{true, true, true}},
		{"none left", Filter{MinScore: 0.99}, -1, []bool{true, true, true}},
		{"keep empty", Filter{MinScore: 0.99, KeepEmpty: true}, 0, []bool{true, true, true}},
	} {
		got, ok := tc.f.Result(r)
		if n := len(got.Faces); (tc.faces < 0) == ok || ok && n != tc.faces {
			t.Errorf("%s: result delivered %v with %d faces, want %d", tc.name, ok, n, tc.faces)
		}
		evs := []event.Event{testEvent("lobby", event.KindAppeared, "t", nil), testEvent("lobby", event.KindRecognized, "t", ada),
			testEvent("lobby", event.KindLeft, "t", weak)}
		for i, ev := range evs {
			if got := tc.f.Event(ev); got != tc.events[i] {
				t.Errorf("%s: event %s delivered %v", tc.name, ev.Kind, got)
			}
		}
	}
	if len(r.Faces) != 3 {
		t.Fatal("Filter.Result modified its argument")
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1795306514, 0)
	body := []byte(`{"schema":1}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(secret, now.Unix(), body)
	if !strings.HasPrefix(good, "sha256=") || len(good) != 7+64 {
		t.Fatalf("signature %q", good)
	}
	if err := Verify(secret, ts, good, body, now.Add(time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if err := Verify(secret, ts, "sha256=00,"+good, body, now, 0); err != nil {
		t.Fatalf("second of two signatures: %v", err)
	}
	for name, tc := range map[string]struct {
		secret    []byte
		ts, sig   string
		body      []byte
		now       time.Time
		wantErrIs error
	}{
		"wrong secret": {[]byte("other"), ts, good, body, now, ErrSignature},
		"no secret":    {nil, ts, good, body, now, ErrSignature},
		"body changed": {secret, ts, good, []byte(`{"schema":2}`), now, ErrSignature},
		"ts changed":   {secret, strconv.FormatInt(now.Unix()+1, 10), good, body, now, ErrSignature},
		"stale":        {secret, ts, good, body, now.Add(6 * time.Minute), ErrTimestamp},
		"future":       {secret, ts, good, body, now.Add(-6 * time.Minute), ErrTimestamp},
		"no ts":        {secret, "", good, body, now, ErrTimestamp},
		"ts not dec":   {secret, "0x6b0", good, body, now, ErrTimestamp},
		"ts padded":    {secret, "0" + ts, good, body, now, ErrTimestamp},
		"no sig":       {secret, ts, "", body, now, ErrSignature},
		"other scheme": {secret, ts, strings.Replace(good, "sha256", "sha1", 1), body, now, ErrSignature},
		"upper hex":    {secret, ts, "sha256=" + strings.ToUpper(good[7:]), body, now, nil},
	} {
		err := Verify(tc.secret, tc.ts, tc.sig, tc.body, tc.now, 0)
		if tc.wantErrIs == nil && err != nil || tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
			t.Errorf("%s: %v, want %v", name, err, tc.wantErrIs)
		}
	}
}

// TestVerifyRequestBodyLimit: VerifyRequest refuses bodies over its limit.
func TestVerifyRequestBodyLimit(t *testing.T) {
	body := strings.Repeat("x", 100)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	ts := time.Now().Unix()
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	r.Header.Set(HeaderSignature, Sign(secret, ts, []byte(body)))
	if _, err := VerifyRequest(r, secret, 0, 99); err == nil {
		t.Fatal("accepted a body over the limit")
	}
	r.Body = io.NopCloser(strings.NewReader(body))
	if got, err := VerifyRequest(r, secret, 0, 100); err != nil || string(got) != body {
		t.Fatalf("%v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-3":                            0,
		"99999999":                      24 * time.Hour,
		"Sun, 22 Nov 2026 00:00:10 GMT": 10 * time.Second,
		"Sat, 21 Nov 2026 00:00:10 GMT": 0,
		"soon":                          0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestParsePayload(t *testing.T) {
	r := res("lobby", 5, face("", 1, 0))
	ok := fmt.Sprintf(`{"schema":1,"type":"result","delivery":%q,"result":{"schema":1,"stream":"lobby","seq":5,"captured_at":%q,"faces":[]}}`,
		ResultDelivery(r), r.CapturedAt.Format(time.RFC3339Nano))
	if p, err := ParsePayload([]byte(ok)); err != nil || p.Result.Seq != 5 {
		t.Fatalf("%+v %v", p, err)
	}
	for name, body := range map[string]string{
		"schema":         `{"schema":2,"type":"result"}`,
		"type":           `{"schema":1,"type":"face.sneezed"}`,
		"both":           `{"schema":1,"type":"result","result":{},"event":{}}`,
		"no doc":         `{"schema":1,"type":"face.left"}`,
		"bad result":     `{"schema":1,"type":"result","result":{"schema":1,"stream":"a b"}}`,
		"wrong delivery": strings.Replace(ok, `"delivery":"r.`, `"delivery":"x.`, 1),
		"kind mismatch":  `{"schema":1,"type":"face.left","delivery":"e.a.t.face.appeared","event":{"schema":1,"kind":"face.appeared","stream":"a","track_id":"t"}}`,
		"not json":       `{`,
	} {
		if _, err := ParsePayload([]byte(body)); !errors.Is(err, ErrPayload) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCollector(t *testing.T) {
	rc := newReceiver(t)
	s := newSink(t, &Sink{Name: "ops", URL: rc.srv.URL})
	if err := s.Write(context.Background(), res("a", 1, face("", 1, 0))); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(s))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetName() == MetricDuration && f.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
			t.Fatalf("histogram %v", f)
		}
	}
	for _, n := range []string{MetricDeliveries, MetricRetries, MetricFiltered, MetricDiscarded, MetricInFlight, MetricQueued, MetricDuration} {
		if !names[n] {
			t.Errorf("%s not exported", n)
		}
	}
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"schema":1,"type":"result"}`)
	f.Add("1795306514", Sign(secret, 1795306514, body), body)
	f.Add("1795306514", "sha256=00,"+Sign(secret, 1795306514, body), body)
	f.Add("", "", []byte{})
	f.Add("-1", "sha256=zz", []byte("x"))
	f.Add("99999999999999999999", "sha256="+strings.Repeat("0", 64), body)
	now := time.Unix(1795306514, 0)
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		err := Verify(secret, ts, sig, body, now, time.Hour)
		if err != nil && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrTimestamp) {
			t.Fatalf("error %v wraps neither ErrSignature nor ErrTimestamp", err)
		}
		if err == nil {
			// Accepted: then the timestamp is canonical and some signature is the real one.
			n, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || !strings.Contains(strings.ToLower(sig), Sign(secret, n, body)[7:]) {
				t.Fatalf("accepted ts %q sig %q", ts, sig)
			}
		}
		// What Sign produces always verifies.
		if n, perr := strconv.ParseInt(ts, 10, 64); perr == nil && n > 0 && strconv.FormatInt(n, 10) == ts {
			if err := Verify(secret, ts, Sign(secret, n, body), body, time.Unix(n, 0), 0); err != nil {
				t.Fatalf("own signature refused: %v", err)
			}
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	r := res("lobby", 5, face("Ada", 1, 0.9))
	rb, _ := json.Marshal(Payload{Schema: 1, Type: TypeResult, Delivery: ResultDelivery(r), Result: &r})
	ev := testEvent("lobby", event.KindLeft, "t-1", &result.Identity{Name: "Ada", Similarity: 0.8})
	eb, _ := json.Marshal(Payload{Schema: 1, Type: ev.Kind, Delivery: EventDelivery(ev), Event: &ev, Snapshot: []byte{0xff, 0xd8, 0xff}})
	f.Add(rb)
	f.Add(eb)
	f.Add([]byte(`{"schema":1,"type":"result","result":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePayload(body)
		if err != nil {
			if !errors.Is(err, ErrPayload) {
				t.Fatalf("error %v does not wrap ErrPayload", err)
			}
			return
		}
		if (p.Result == nil) == (p.Event == nil) {
			t.Fatalf("payload %+v has not exactly one document", p)
		}
		// A parsed payload survives a round trip.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParsePayload(b)
		if err != nil || q.Delivery != p.Delivery || q.Type != p.Type {
			t.Fatalf("round trip: %+v, %v", q, err)
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "3", "-3", "99999999999", "Sun, 22 Nov 2026 00:00:10 GMT", "Sunday, 22-Nov-26 00:00:10 GMT", "soon"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := ParseRetryAfter(v, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %s outside 0..24h", v, d)
		}
	})
}
