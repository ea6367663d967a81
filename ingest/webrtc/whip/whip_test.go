package whip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is an Endpoint mounted on a real HTTP server on loopback; sessions arrive on the
// channel (the test owns and closes them).
type testServer struct {
	ep       *Endpoint
	srv      *httpapi.Server
	sessions chan *Session
}

func newTestServer(t *testing.T, cfg Config, onSession func(*Session) error) *testServer {
	t.Helper()
	ts := &testServer{sessions: make(chan *Session, 8)}
	if onSession == nil {
		onSession = func(s *Session) error {
			select {
			case ts.sessions <- s:
				return nil
			default:
				return errors.New("test consumer is full")
			}
		}
	}
	ts.ep = &Endpoint{Config: cfg, OnSession: onSession, Log: testLog()}
	if err := ts.ep.Initialize(); err != nil {
		t.Fatal(err)
	}
	ts.srv = &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	ts.ep.Mount(ts.srv)
	if err := ts.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ts.srv.Close(); err != nil {
			t.Error(err)
		}
		if err := ts.ep.Close(); err != nil {
			t.Error(err)
		}
		if n := ts.ep.Sessions(); n != 0 {
			t.Errorf("%d sessions hold resources after Close", n)
		}
		for {
			select {
			case s := <-ts.sessions:
				s.Close()
			default:
				return
			}
		}
	})
	return ts
}

// testLog shows the endpoint's logs with -v only.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}

func (ts *testServer) session(t *testing.T) *Session {
	t.Helper()
	select {
	case s := <-ts.sessions:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no session within 10 s")
		return nil
	}
}

// client is a pion publisher sending a synthetic VP8 RTP stream (the payload is not decodable
// video: this package does not decode).
type client struct {
	pc     *webrtc.PeerConnection
	track  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender

	mu   sync.Mutex
	plis int

	stop chan struct{}
	wg   sync.WaitGroup
	seq  uint16
	skip chan int // asks the writer to skip that many sequence numbers
}

// newClient creates a publisher whose VP8 has payload type pt.
func newClient(t *testing.T, pt webrtc.PayloadType) *client {
	t.Helper()
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{pc: pc, stop: make(chan struct{}), skip: make(chan int, 1)}
	t.Cleanup(c.close)
	c.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if c.sender, err = pc.AddTrack(c.track); err != nil {
		t.Fatal(err)
	}
	c.wg.Add(1)
	go c.readRTCP()
	return c
}

// offer returns the client's offer with its candidates.
func (c *client) offer(t *testing.T) string {
	t.Helper()
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-g
	return c.pc.LocalDescription().SDP
}

// publish posts the offer and applies the answer; it returns the response and the answer.
func (c *client) publish(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	res, body := post(t, url, "application/sdp", c.offer(t))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s: %s", url, res.Status, body)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	return res, body
}

// send starts writing a 30 fps stream of 3-packet frames.
func (c *client) send() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		var ts uint32
		payload := make([]byte, 1000)
		for {
			select {
			case <-c.stop:
				return
			case n := <-c.skip:
				c.seq += uint16(n)
			case <-tick.C:
				ts += 3000
				for i := range 3 {
					c.seq++
					_ = c.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: c.seq, Timestamp: ts, Marker: i == 2}, Payload: payload})
				}
			}
		}
	}()
}

func (c *client) readRTCP() {
	defer c.wg.Done()
	for {
		pkts, _, err := c.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if _, ok := p.(*rtcp.PictureLossIndication); ok {
				c.mu.Lock()
				c.plis++
				c.mu.Unlock()
			}
		}
	}
}

func (c *client) pliCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plis
}

func (c *client) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	_ = c.pc.GracefulClose()
	c.wg.Wait()
}

func post(t *testing.T, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodPost, url, contentType, body)
}

func do(t *testing.T, method, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func waitDone(t *testing.T, s *Session, within time.Duration) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(within):
		t.Fatalf("session %s still running after %s", s.ID(), within)
		return nil
	}
}

func TestPublishReadDelete(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := newClient(t, 120)
	res, answer := c.publish(t, ts.srv.URL()+"/whip/cam-1")
	s := ts.session(t)
	defer s.Close()
	if loc := res.Header.Get("Location"); loc != "/whip/cam-1/"+s.ID() {
		t.Fatalf("Location %q, want /whip/cam-1/%s", loc, s.ID())
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Fatalf("Content-Type %q", ct)
	}
	if !strings.Contains(answer, "a=fmtp:120 x-google-start-bitrate=2500") {
		t.Fatalf("answer lacks the start bitrate on payload type 120:\n%s", answer)
	}
	if s.Stream() != "cam-1" {
		t.Fatalf("stream %q", s.Stream())
	}
	c.send()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := s.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Codec != VP8 || tr.PayloadType != 120 || tr.ClockRate != 90000 {
		t.Fatalf("track %+v, want VP8 on the offer's payload type 120", tr)
	}
	buf := make([]byte, MaxPacket)
	var p rtp.Packet
	for i := range 30 {
		n, err := s.ReadRTP(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if p.PayloadType != 120 || len(p.Payload) != 1000 || p.SSRC != tr.SSRC {
			t.Fatalf("packet %d: pt %d, %d payload bytes, ssrc %d", i, p.PayloadType, len(p.Payload), p.SSRC)
		}
	}
	testenv.Eventually(t, 5*time.Second, "PLI at start", func() bool { return c.pliCount() >= 1 })

	// Loss: skip sequence numbers (after the 1 s PLI rate limit) and expect another PLI.
	testenv.Eventually(t, 3*time.Second, "PLI rate limit to pass", func() bool { return time.Since(s.Created()) > 1500*time.Millisecond })
	c.skip <- 5
	for s.Stats().Lost < 5 {
		if _, err := s.ReadRTP(buf); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 5*time.Second, "PLI after loss", func() bool { return c.pliCount() >= 2 })
	if st := s.Stats(); st.PLIs < 2 || st.Packets < 30 {
		t.Fatalf("stats %+v", st)
	}

	del, body := do(t, http.MethodDelete, ts.srv.URL()+"/whip/cam-1/"+s.ID(), "", "")
	if del.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %s %s", del.Status, body)
	}
	if err := waitDone(t, s, 5*time.Second); !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "DELETE") {
		t.Fatalf("Err after DELETE = %v", err)
	}
	if _, err := s.ReadRTP(buf); !errors.Is(err, ErrEnded) {
		t.Fatalf("ReadRTP after DELETE = %v", err)
	}
	if del, _ := do(t, http.MethodDelete, ts.srv.URL()+"/whip/cam-1/"+s.ID(), "", ""); del.StatusCode != http.StatusNotFound {
		t.Fatalf("second DELETE: %s", del.Status)
	}
	s.Close()
	testenv.Eventually(t, 5*time.Second, "slot released", func() bool { return ts.ep.Sessions() == 0 })
}

// errorBody decodes an httpapi error.
func errorBody(t *testing.T, body string) httpapi.Error {
	t.Helper()
	var e struct {
		Error httpapi.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error
}

const videoOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\n%s"

func TestBadRequests(t *testing.T) {
	ts := newTestServer(t, Config{MaxOfferBytes: 4096}, nil)
	base := ts.srv.URL()
	long := strings.Repeat("a", 10_000)
	vp9 := fmt.Sprintf(videoOffer, "98", "a=sendonly\r\na=rtpmap:98 VP9/90000\r\n")
	recv := fmt.Sprintf(videoOffer, "96", "a=recvonly\r\na=rtpmap:96 VP8/90000\r\n")
	noICE := fmt.Sprintf(videoOffer, "96", "a=sendonly\r\na=rtpmap:96 VP8/90000\r\n")
	audio := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code, msg                       string
	}{
		{"wildcard stream", "POST", "/whip/a.>", "application/sdp", noICE, 400, CodeInvalidStream, "invalid stream name"},
		{"10 kB stream", "POST", "/whip/" + long, "application/sdp", noICE, 400, CodeInvalidStream, "10000 characters"},
		{"escaped space", "POST", "/whip/a%20b", "application/sdp", noICE, 400, CodeInvalidStream, "invalid stream name"},
		{"content type", "POST", "/whip/cam", "application/json", noICE, 415, CodeUnsupportedMedia, "application/sdp"},
		{"no content type", "POST", "/whip/cam", "", noICE, 415, CodeUnsupportedMedia, "application/sdp"},
		{"empty", "POST", "/whip/cam", "application/sdp", "", 400, CodeInvalidOffer, "empty"},
		{"garbage", "POST", "/whip/cam", "application/sdp", "hello, I am not SDP", 400, CodeInvalidOffer, "not valid SDP"},
		{"audio only", "POST", "/whip/cam", "application/sdp", audio, 400, CodeInvalidOffer, "no video section"},
		{"vp9 only", "POST", "/whip/cam", "application/sdp", vp9, 400, CodeInvalidOffer, "(VP9) include neither VP8 nor H264"},
		{"recvonly", "POST", "/whip/cam", "application/sdp", recv, 400, CodeInvalidOffer, "not sent"},
		{"no ICE credentials", "POST", "/whip/cam", "application/sdp", noICE, 400, CodeInvalidOffer, "offer rejected"},
		{"too large", "POST", "/whip/cam", "application/sdp", noICE + strings.Repeat("a=x\r\n", 1000), 413, CodeOfferTooLarge, "4096 bytes"},
		{"delete unknown", "DELETE", "/whip/cam/NOSUCH", "", "", 404, CodeNoSession, "no live session"},
		{"delete bad stream", "DELETE", "/whip/a.b/X", "", "", 400, CodeInvalidStream, "invalid stream name"},
		{"page bad stream", "GET", "/publish/a.>", "", "", 400, CodeInvalidStream, "invalid stream name"},
		{"page 10 kB stream", "GET", "/publish/" + long, "", "", 400, CodeInvalidStream, "10000 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, tc.method, base+tc.path, tc.ctype, tc.body)
			if res.StatusCode != tc.status {
				t.Fatalf("%s %s: %s %s, want %d", tc.method, tc.path, res.Status, body, tc.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			e := errorBody(t, body)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error %+v, want code %s and message containing %q", e, tc.code, tc.msg)
			}
		})
	}
	if n := ts.ep.Sessions(); n != 0 {
		t.Fatalf("%d sessions after refused offers", n)
	}
}

func TestSessionLimit(t *testing.T) {
	ts := newTestServer(t, Config{MaxSessions: 1}, nil)
	a := newClient(t, 96)
	a.publish(t, ts.srv.URL()+"/whip/a")
	s := ts.session(t)
	defer s.Close()
	b := newClient(t, 96)
	res, body := post(t, ts.srv.URL()+"/whip/b", "application/sdp", b.offer(t))
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("second session: %s (Retry-After %q) %s", res.Status, res.Header.Get("Retry-After"), body)
	}
	if e := errorBody(t, body); e.Code != CodeUnavailable || !strings.Contains(e.Message, "at most 1") {
		t.Fatalf("error %+v", e)
	}
	// Once the first is gone, the slot is free again.
	s.Close()
	c := newClient(t, 96)
	c.publish(t, ts.srv.URL()+"/whip/b")
	ts.session(t).Close()
}

func TestNewPublisherReplacesOld(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	a := newClient(t, 96)
	a.publish(t, ts.srv.URL()+"/whip/cam")
	first := ts.session(t)
	defer first.Close()
	b := newClient(t, 96)
	b.publish(t, ts.srv.URL()+"/whip/cam")
	second := ts.session(t)
	defer second.Close()
	if err := waitDone(t, first, 5*time.Second); !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("first session: %v", err)
	}
	b.send()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := second.Track(ctx); err != nil {
		t.Fatalf("second session: %v", err)
	}
	if del, _ := do(t, http.MethodDelete, ts.srv.URL()+"/whip/cam/"+first.ID(), "", ""); del.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE of the replaced session: %s", del.Status)
	}
}

// A publisher that takes the answer but never connects is dropped after MediaTimeout.
func TestMediaTimeout(t *testing.T) {
	ts := newTestServer(t, Config{MediaTimeout: 500 * time.Millisecond}, nil)
	c := newClient(t, 96)
	res, body := post(t, ts.srv.URL()+"/whip/cam", "application/sdp", c.offer(t))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("%s %s", res.Status, body)
	}
	c.close() // never applies the answer
	s := ts.session(t)
	defer s.Close()
	if err := waitDone(t, s, 5*time.Second); !errors.Is(err, ErrPeerLost) || !strings.Contains(err.Error(), "no video") {
		t.Fatalf("Err = %v, want ErrPeerLost (no video)", err)
	}
}

// A publisher closing its peer connection (DTLS close_notify) ends the session in order.
func TestPublisherCloses(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := newClient(t, 96)
	c.publish(t, ts.srv.URL()+"/whip/cam")
	s := ts.session(t)
	defer s.Close()
	c.send()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Track(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.close()
	buf := make([]byte, MaxPacket)
	var err error
	for err == nil {
		_, err = s.ReadRTP(buf)
	}
	if !errors.Is(err, ErrEnded) {
		t.Fatalf("ReadRTP after the publisher closed: %v", err)
	}
	t.Logf("ended %s after the publisher closed: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestRefused(t *testing.T) {
	ts := newTestServer(t, Config{}, func(*Session) error { return errors.New("stream cam is not allowed") })
	c := newClient(t, 96)
	res, body := post(t, ts.srv.URL()+"/whip/cam", "application/sdp", c.offer(t))
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("%s %s", res.Status, body)
	}
	if e := errorBody(t, body); e.Code != CodeRefused || e.Message != "stream cam is not allowed" {
		t.Fatalf("error %+v", e)
	}
	if n := ts.ep.Sessions(); n != 0 {
		t.Fatalf("%d sessions after a refusal", n)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	c := newClient(t, 96)
	c.publish(t, ts.srv.URL()+"/whip/cam")
	s := ts.session(t)
	defer s.Close()
	if err := ts.ep.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, s, time.Second); !errors.Is(err, ErrEnded) || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("Err = %v", err)
	}
	d := newClient(t, 96)
	if res, body := post(t, ts.srv.URL()+"/whip/cam", "application/sdp", d.offer(t)); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("offer after Close: %s %s", res.Status, body)
	}
}

func TestPublishPage(t *testing.T) {
	ts := newTestServer(t, Config{}, nil)
	res, body := do(t, http.MethodGet, ts.srv.URL()+"/publish/cam-1", "", "")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%s %q", res.Status, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{`"../whip/"`, "getUserMedia", "application/sdp", "DELETE"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// No CDN, nothing from elsewhere: the page loads no resource by URL.
	for _, bad := range []string{"http://", "https://", "src=", "<link"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// The routes are in the server's OpenAPI document.
	paths, _ := ts.srv.OpenAPI()["paths"].(map[string]any)
	for p, method := range map[string]string{"/whip/{stream}": "post", "/whip/{stream}/{session}": "delete", "/publish/{stream}": "get"} {
		ops, _ := paths[p].(map[string]any)
		if _, ok := ops[method]; !ok {
			t.Errorf("OpenAPI lacks %s %s", method, p)
		}
	}
}

func TestInitializeValidates(t *testing.T) {
	if err := (&Endpoint{}).Initialize(); err == nil || !strings.Contains(err.Error(), "OnSession") {
		t.Fatalf("Initialize without OnSession: %v", err)
	}
	e := &Endpoint{Config: Config{MaxSessions: -1}, OnSession: func(*Session) error { return nil }}
	if err := e.Initialize(); err == nil {
		t.Fatal("negative MaxSessions accepted")
	}
}

// TestAnswerRecordedChromiumOffer answers an offer recorded from Debian's Chromium 156
// (testdata/chromium-offer.sdp; it offers VP8, H264 in four profiles and both packetization
// modes, AV1, VP9, rtx, red, ulpfec): the answer keeps VP8 first, as offered, accepts only VP8
// and H264, and puts the start bitrate on each of them.
func TestAnswerRecordedChromiumOffer(t *testing.T) {
	offer, err := os.ReadFile(filepath.Join("testdata", "chromium-offer.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	if codecs, err := CheckOffer(string(offer)); err != nil || !slices.Equal(codecs, []Codec{VP8, H264}) {
		t.Fatalf("CheckOffer = %v, %v", codecs, err)
	}
	ts := newTestServer(t, Config{StartBitrateKbps: 1800}, nil)
	res, answer := post(t, ts.srv.URL()+"/whip/cam", "application/sdp", string(offer))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("%s %s", res.Status, answer)
	}
	ts.session(t).Close()
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		t.Fatal(err)
	}
	if len(sd.MediaDescriptions) != 1 {
		t.Fatalf("%d media sections", len(sd.MediaDescriptions))
	}
	md := sd.MediaDescriptions[0]
	var names []string
	for _, pt := range md.MediaName.Formats {
		name, _ := rtpmapCodec(md, pt)
		names = append(names, name)
		if _, ok := supported(name); !ok {
			continue
		}
		fmtp := ""
		for _, a := range md.Attributes {
			if p, params, ok := strings.Cut(a.Value, " "); a.Key == "fmtp" && ok && p == pt {
				fmtp = params
			}
		}
		if !strings.Contains(fmtp, "x-google-start-bitrate=1800") {
			t.Errorf("format %s (%s): fmtp %q lacks the start bitrate", pt, name, fmtp)
		}
	}
	if len(names) == 0 || names[0] != "VP8" || slices.ContainsFunc(names, func(n string) bool { _, ok := supported(n); return !ok }) {
		t.Fatalf("answer formats %v: want VP8 first and only VP8/H264", names)
	}
	t.Logf("answer formats: %v", names)
}
