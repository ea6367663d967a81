// Package whip is Vigil's WHIP (WebRTC-HTTP Ingestion Protocol, RFC 9725) endpoint: a browser or
// any WHIP client POSTs an SDP offer to /whip/{stream}, gets an answer and a session resource
// (/whip/{stream}/{session}), sends its camera over WebRTC, and DELETEs the resource to stop.
// Each session delivers the raw RTP packets of its video track (VP8 or H.264) to whoever
// consumes it (ingest/webrtc decodes them into frames); the package itself decodes nothing.
//
// It also serves a small page, GET /publish/{stream}, that publishes the user's camera through
// the endpoint.
//
// The WebRTC stack is pion/webrtc, set up for publishers on the same host or network: host UDP4
// candidates including loopback, no mDNS, no STUN or TURN, and short ICE timeouts so a vanished
// publisher is noticed within ~7 s. The package is pure Go.
package whip

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Codec names a video codec a session can carry, as SDP spells it.
type Codec string

// The codecs the endpoint accepts. It registers no other, so a publisher offering only others
// is refused.
const (
	VP8  Codec = "VP8"
	H264 Codec = "H264"
)

// ErrEnded is wrapped by a session's Err when it ended in an orderly way: the publisher sent
// DELETE or closed its connection, a newer publisher took the stream over, the consumer closed
// the session, or the endpoint shut down.
var ErrEnded = errors.New("whip session ended")

// ErrPeerLost is wrapped by a session's Err when the publisher vanished: ICE failed (no traffic
// for ICEDisconnectedTimeout + ICEFailedTimeout) or no video arrived within MediaTimeout.
var ErrPeerLost = errors.New("whip publisher lost")

// Config tunes an Endpoint. The zero value gives the defaults.
type Config struct {
	// MaxSessions bounds the sessions alive at once, counted from the offer until the session
	// has released everything; an offer beyond it gets 503. Default 8.
	MaxSessions int `yaml:"max_sessions"`
	// MaxOfferBytes bounds the offer's body; a larger one gets 413. Default 64 KiB (a browser's
	// offer is 4-10 KB).
	MaxOfferBytes int64 `yaml:"max_offer_bytes"`
	// StartBitrateKbps is put into the answer's fmtp as x-google-start-bitrate, so Chromium
	// starts near its target resolution instead of ramping up from 480x270 over ~20 s. Default
	// 2500 (720p30 VP8).
	StartBitrateKbps int `yaml:"start_bitrate_kbps"`
	// ICEDisconnectedTimeout: a publisher silent this long is considered disconnected (it may
	// come back). Default 2 s.
	ICEDisconnectedTimeout time.Duration `yaml:"ice_disconnected_timeout"`
	// ICEFailedTimeout: a disconnected publisher silent this much longer is lost; the session
	// ends with ErrPeerLost. Default 5 s: a vanished browser is noticed in ~7 s.
	ICEFailedTimeout time.Duration `yaml:"ice_failed_timeout"`
	// ICEKeepaliveInterval is how often ICE checks a path without media. Default 500 ms.
	ICEKeepaliveInterval time.Duration `yaml:"ice_keepalive_interval"`
	// MediaTimeout ends a session (ErrPeerLost) whose first video packet has not arrived this
	// long after the offer: the publisher took the answer but never connected. Default 15 s.
	MediaTimeout time.Duration `yaml:"media_timeout"`
	// AnswerTimeout bounds gathering the endpoint's ICE candidates for the answer. Default 5 s.
	AnswerTimeout time.Duration `yaml:"answer_timeout"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.MaxSessions == 0 {
		c.MaxSessions = 8
	}
	if c.MaxOfferBytes == 0 {
		c.MaxOfferBytes = 64 << 10
	}
	if c.StartBitrateKbps == 0 {
		c.StartBitrateKbps = 2500
	}
	if c.ICEDisconnectedTimeout == 0 {
		c.ICEDisconnectedTimeout = 2 * time.Second
	}
	if c.ICEFailedTimeout == 0 {
		c.ICEFailedTimeout = 5 * time.Second
	}
	if c.ICEKeepaliveInterval == 0 {
		c.ICEKeepaliveInterval = 500 * time.Millisecond
	}
	if c.MediaTimeout == 0 {
		c.MediaTimeout = 15 * time.Second
	}
	if c.AnswerTimeout == 0 {
		c.AnswerTimeout = 5 * time.Second
	}
}

// Validate checks a configuration after SetDefaults.
func (c Config) Validate() error {
	switch {
	case c.MaxSessions < 1:
		return fmt.Errorf("whip: max sessions %d < 1", c.MaxSessions)
	case c.MaxOfferBytes < 1024:
		return fmt.Errorf("whip: max offer size %d bytes < 1024", c.MaxOfferBytes)
	case c.StartBitrateKbps < 50 || c.StartBitrateKbps > 100_000:
		return fmt.Errorf("whip: start bitrate %d kbps outside 50..100000", c.StartBitrateKbps)
	case c.ICEDisconnectedTimeout <= 0 || c.ICEFailedTimeout <= 0 || c.ICEKeepaliveInterval <= 0:
		return fmt.Errorf("whip: ICE timeouts must be positive")
	case c.MediaTimeout <= 0 || c.AnswerTimeout <= 0:
		return fmt.Errorf("whip: media and answer timeouts must be positive")
	}
	return nil
}

// newAPI builds the pion API every session's peer connection comes from: only VP8 and H.264
// registered (each with NACK and PLI feedback; pion's NACK generator, RTCP receiver reports and
// transport-wide congestion control feedback, so the browser's bandwidth estimate can grow), and
// ICE on host UDP4 candidates including loopback, without mDNS.
func newAPI(c Config) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecs := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96},
	}
	// pion matches H.264 by packetization mode and the profile part of profile-level-id
	// (profile_idc and constraint flags), so each profile a browser may offer is listed.
	for i, profile := range []string{"42001f", "42e01f", "4d001f", "64001f"} {
		codecs = append(codecs, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile,
		}, PayloadType: webrtc.PayloadType(102 + i)})
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("whip: register %s: %w", c.MimeType, err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(c.ICEDisconnectedTimeout, c.ICEFailedTimeout, c.ICEKeepaliveInterval)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Endpoint serves WHIP. Fill the exported fields, call Initialize, Mount it on the HTTP server,
// and Close it when done.
//
// Sessions: one per accepted offer, at most one per stream: an offer for a stream that already
// has a session ends the old one (ErrEnded, "replaced") and takes its place, so a reloaded page
// reconnects at once instead of waiting for the old connection to time out. A session counts
// against MaxSessions until it has released everything.
type Endpoint struct {
	Config
	// OnSession receives every new session, after negotiation and before the answer is sent;
	// the consumer then reads the session's RTP (Track, ReadRTP) and Closes it when done. It
	// runs on the HTTP request's goroutine, so it must return promptly. Returning an error
	// refuses the publisher (403 with the error's text) and the endpoint ends the session.
	// Required.
	OnSession func(*Session) error
	// Log receives session lifecycle logs (never per packet). Default slog.Default().
	Log *slog.Logger

	api *webrtc.API

	mu       sync.Mutex
	closed   bool
	byID     map[string]*Session
	byStream map[string]*Session
	live     int            // sessions not yet released, including those being negotiated
	wg       sync.WaitGroup // one per live session: its supervisor
}

// Initialize applies defaults, validates the configuration and builds the WebRTC stack.
func (e *Endpoint) Initialize() error {
	e.SetDefaults()
	if err := e.Validate(); err != nil {
		return err
	}
	if e.OnSession == nil {
		return errors.New("whip: OnSession is required")
	}
	if e.Log == nil {
		e.Log = slog.Default()
	}
	api, err := newAPI(e.Config)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.api = api
	e.byID = map[string]*Session{}
	e.byStream = map[string]*Session{}
	e.mu.Unlock()
	return nil
}

// Close refuses new offers, ends every session (ErrEnded) and waits until each has released
// its peer connection and goroutines. Consumers still Close their sessions (a no-op by then).
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closed = true
	all := make([]*Session, 0, len(e.byID))
	for _, s := range e.byID {
		all = append(all, s)
	}
	e.mu.Unlock()
	for _, s := range all {
		s.Stop(fmt.Errorf("%w: the server is shutting down", ErrEnded))
	}
	e.wg.Wait()
	return nil
}

// Sessions returns the number of sessions holding resources (negotiating, live or being torn
// down).
func (e *Endpoint) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live
}

// reserve takes a session slot; release returns it.
func (e *Endpoint) reserve() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.api == nil:
		return errNotReady
	case e.closed:
		return errClosing
	case e.live >= e.MaxSessions:
		return errFull
	}
	e.live++
	e.wg.Add(1)
	return nil
}

func (e *Endpoint) release() {
	e.mu.Lock()
	e.live--
	e.mu.Unlock()
	e.wg.Done()
}

var (
	errNotReady = errors.New("the WHIP endpoint is not initialized")
	errClosing  = errors.New("the server is shutting down")
	errFull     = errors.New("too many WHIP sessions")
)

// register makes s its stream's session, returning the session it replaces, if any.
func (e *Endpoint) register(s *Session) (old *Session, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errClosing
	}
	old = e.byStream[s.stream]
	e.byStream[s.stream] = s
	e.byID[s.id] = s
	return old, nil
}

// forget removes s from the lookups (it is stopping); its slot stays taken until release.
func (e *Endpoint) forget(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byID[s.id] == s {
		delete(e.byID, s.id)
	}
	if e.byStream[s.stream] == s {
		delete(e.byStream, s.stream)
	}
}

func (e *Endpoint) lookup(id string) *Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byID[id]
}
