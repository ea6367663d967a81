// Package webhook is a sink that POSTs results and track events as JSON to an HTTP endpoint,
// signed with HMAC-SHA256, retried with exponential backoff, filtered per sink.
//
// # Delivery
//
// Write (results) and WriteEvent (events) follow the sink contract: each returns once its
// document was delivered (a 2xx answer), filtered out (nil at once), or failed. The work happens
// in the caller's goroutine; the Sink bounds it:
//
//   - ordered per stream: one delivery per stream is in progress at a time, retries included;
//     documents of one stream waiting for it go in the order they arrived;
//   - MaxInFlight deliveries (different streams) are in progress at once; more wait;
//   - QueueSize bounds the deliveries waiting or in progress: beyond it Write fails at once with
//     ErrQueueFull (counted), so a dead receiver cannot pile up callers;
//   - MaxAttempts attempts, InitialBackoff doubling to MaxBackoff between them (with jitter; a
//     Retry-After answer is honoured up to MaxBackoff). Network errors, timeouts, 408, 425, 429
//     and 5xx are retried; any other answer (3xx, 4xx) is a permanent rejection (ErrRejected).
//     After the last attempt Write returns an error wrapping ErrGaveUp.
//
// With the sink role reading from JetStream, a failed Write is redelivered later, so nothing is
// lost while the receiver is down, but the role (and every sink behind it) waits for this one:
// give each webhook its own sink role with its own durable consumer, or set Discard to count
// failures and move on (the receiver then misses those documents).
//
// A receiver sees at-least-once delivery: it deduplicates on HeaderDelivery.
//
// # Wire format
//
// POST URL with Content-Type application/json, the Payload as body, and the headers
// HeaderType, HeaderDelivery, HeaderAttempt, HeaderTimestamp and, with a Secret,
// HeaderSignature (see Sign and Verify). A Go receiver:
//
//	body, err := webhook.VerifyRequest(r, secret, 0, 0)
//	if err != nil { http.Error(w, "bad signature", http.StatusUnauthorized); return }
//	p, err := webhook.ParsePayload(body)
//
// The package is pure Go.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/result"
)

// Errors of Write and WriteEvent.
var (
	// ErrGaveUp: every attempt failed with a retryable error.
	ErrGaveUp = errors.New("webhook: gave up")
	// ErrRejected: the receiver answered with a status that retrying would not change.
	ErrRejected = errors.New("webhook: rejected")
	// ErrQueueFull: QueueSize deliveries were already waiting or in progress.
	ErrQueueFull = errors.New("webhook: queue full")
	// ErrClosed: the sink was closed before or while delivering.
	ErrClosed = errors.New("webhook: closed")
)

// Defaults of the Sink fields.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultMaxAttempts    = 5
	DefaultInitialBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMaxInFlight    = 4
	DefaultQueueSize      = 256
)

// durationBuckets are the upper bounds (seconds) of the delivery duration histogram.
func durationBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
}

// Sink delivers results and events to one URL. Fill the exported fields, call Initialize, then
// Write / WriteEvent from any number of goroutines; Close when done. Fields must not change
// after Initialize.
type Sink struct {
	// Name labels the sink's metrics and logs. Default the URL's host.
	Name string
	// URL is the http or https endpoint. Required.
	URL string
	// Secret keys the HMAC-SHA256 signature (HeaderSignature). Default none: unsigned.
	Secret []byte
	// Headers are added to every request (for example Authorization). Default none.
	Headers http.Header
	// Filter selects what is delivered. Default: every event and every result with a face.
	Filter Filter
	// IncludeSnapshot adds the event's face crop (JPEG, base64) to event payloads when the
	// caller has one. Default false.
	IncludeSnapshot bool
	// Timeout bounds one attempt (connect, send, answer headers and body). Default 5s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts per document, the first included. Default 5.
	MaxAttempts int
	// InitialBackoff is the wait after the first failed attempt; each later wait doubles, up to
	// MaxBackoff. Each wait is drawn uniformly from its upper half (jitter). Defaults 500ms, 30s.
	InitialBackoff, MaxBackoff time.Duration
	// MaxInFlight bounds the deliveries in progress at once, over all streams. Default 4.
	MaxInFlight int
	// QueueSize bounds the deliveries waiting or in progress; beyond it Write fails with
	// ErrQueueFull. Default 256.
	QueueSize int
	// Discard makes a failed delivery (given up, rejected, queue full) count and return nil, so
	// the caller moves on; the receiver never gets that document. Default false: return the
	// error (the JetStream sink role then redelivers it later).
	Discard bool
	// Client sends the requests. Default: a client of this sink's own, sized for MaxInFlight,
	// that follows no redirects and uses the environment's proxy settings.
	Client *http.Client
	// Log receives failures, at most one line a second. Default slog.Default().
	Log *slog.Logger

	now    func() time.Time // the clock that signs; tests replace it
	jitter func(d time.Duration) time.Duration

	ownClient bool
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	inflight  chan struct{}
	queued    atomic.Int64

	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup
	streams  map[string]*streamLock
	stats    Stats
	lastWarn time.Time
}

// streamLock serialises one stream's deliveries: a one-slot channel whose waiting senders the
// runtime serves in order.
type streamLock struct {
	ch   chan struct{}
	refs int
}

// Stats counts a sink's deliveries.
type Stats struct {
	// Delivered counts documents the receiver accepted (2xx).
	Delivered uint64
	// Filtered counts documents the Filter left out (not sent, Write returned nil).
	Filtered uint64
	// Retries counts attempts after the first.
	Retries uint64
	// Rejected, GaveUp and QueueFull count failed deliveries by cause; Aborted those ended by
	// Close or the caller's context. Discarded counts the failures Discard turned into nil.
	Rejected, GaveUp, QueueFull, Aborted, Discarded uint64
	// InFlight and Queued are the deliveries in progress and waiting or in progress now.
	InFlight, Queued int
	// DurationBuckets[i] counts delivered documents that took at most DurationBounds()[i]
	// seconds from Write to the accepting answer (retries included); DurationCount and
	// DurationSum cover all of them.
	DurationBuckets []uint64
	DurationCount   uint64
	DurationSum     float64
	// LastError describes the latest failure ("" if none).
	LastError string
}

// DurationBounds returns the upper bounds, in seconds, of Stats.DurationBuckets.
func DurationBounds() []float64 { return durationBuckets() }

// Initialize validates the configuration and prepares the client.
func (s *Sink) Initialize() error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("webhook: URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook: URL %q: want http:// or https:// and a host", s.URL)
	}
	if u.User != nil {
		return fmt.Errorf("webhook: URL %s: put credentials in Headers (Authorization), not in the URL", u.Redacted())
	}
	if err := s.Filter.Validate(); err != nil {
		return err
	}
	if s.Name == "" {
		s.Name = u.Host
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.InitialBackoff <= 0 {
		s.InitialBackoff = DefaultInitialBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	s.MaxBackoff = max(s.MaxBackoff, s.InitialBackoff)
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if s.QueueSize <= 0 {
		s.QueueSize = DefaultQueueSize
	}
	s.QueueSize = max(s.QueueSize, s.MaxInFlight)
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.jitter == nil {
		s.jitter = func(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }
	}
	if s.Client == nil {
		s.ownClient = true
		s.Client = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: s.Timeout, KeepAlive: 30 * time.Second}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          s.MaxInFlight,
				MaxIdleConnsPerHost:   s.MaxInFlight,
				MaxConnsPerHost:       s.MaxInFlight,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   s.Timeout,
				ExpectContinueTimeout: time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.inflight = make(chan struct{}, s.MaxInFlight)
	s.streams = map[string]*streamLock{}
	s.stats.DurationBuckets = make([]uint64, len(durationBuckets()))
	return nil
}

// Write delivers r (its faces filtered by Filter) and returns once the receiver accepted it,
// the filter left it out (nil), or delivery failed (ErrGaveUp, ErrRejected, ErrQueueFull,
// ErrClosed or ctx's error; nil instead with Discard).
func (s *Sink) Write(ctx context.Context, r result.Result) error {
	fr, ok := s.Filter.Result(r)
	if !ok {
		s.count(func(st *Stats) { st.Filtered++ })
		return nil
	}
	body, err := json.Marshal(Payload{Schema: PayloadSchema, Type: TypeResult, Delivery: ResultDelivery(r), Result: &fr})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return s.deliver(ctx, r.Stream, TypeResult, ResultDelivery(r), body)
}

// WriteEvent delivers a track event like Write, with snapshot (a JPEG face crop, may be nil)
// when IncludeSnapshot is set.
func (s *Sink) WriteEvent(ctx context.Context, ev event.Event, snapshot []byte) error {
	if !s.Filter.Event(ev) {
		s.count(func(st *Stats) { st.Filtered++ })
		return nil
	}
	p := Payload{Schema: PayloadSchema, Type: ev.Kind, Delivery: EventDelivery(ev), Event: &ev}
	if s.IncludeSnapshot {
		p.Snapshot = snapshot
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return s.deliver(ctx, ev.Stream, ev.Kind, p.Delivery, body)
}

func (s *Sink) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// fail counts a failed delivery and returns what Write returns for it.
func (s *Sink) fail(err error, bump func(*Stats), delivery string) error {
	s.mu.Lock()
	bump(&s.stats)
	s.stats.LastError = err.Error()
	discard := s.Discard && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	if discard {
		s.stats.Discarded++
	}
	now := time.Now()
	warn := now.Sub(s.lastWarn) >= time.Second
	if warn {
		s.lastWarn = now
	}
	s.mu.Unlock()
	if warn {
		s.Log.Warn("webhook delivery failed", "webhook", s.Name, "delivery", delivery, "discarded", discard, "err", err)
	}
	if discard {
		return nil
	}
	return err
}

// lockStream takes stream's turn, waiting behind earlier deliveries of the stream.
func (s *Sink) lockStream(ctx context.Context, stream string) (unlock func(), err error) {
	s.mu.Lock()
	l := s.streams[stream]
	if l == nil {
		l = &streamLock{ch: make(chan struct{}, 1)}
		s.streams[stream] = l
	}
	l.refs++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.streams, stream)
		}
		s.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// deliver sends body, retrying, in the caller's goroutine.
func (s *Sink) deliver(ctx context.Context, stream, typ, delivery string, body []byte) error {
	s.mu.Lock()
	if s.closed || s.ctx == nil {
		s.mu.Unlock()
		return s.fail(ErrClosed, func(st *Stats) { st.Aborted++ }, delivery)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	if n := s.queued.Add(1); n > int64(s.QueueSize) {
		s.queued.Add(-1)
		return s.fail(fmt.Errorf("%w: %d deliveries waiting or in progress", ErrQueueFull, n-1), func(st *Stats) { st.QueueFull++ }, delivery)
	}
	defer s.queued.Add(-1)
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // Close aborts the delivery
	defer stop()
	aborted := func(err error) error {
		if s.ctx.Err() != nil {
			err = ErrClosed
		}
		return s.fail(fmt.Errorf("webhook %s: %s: %w", s.Name, delivery, err), func(st *Stats) { st.Aborted++ }, delivery)
	}

	unlock, err := s.lockStream(ctx, stream)
	if err != nil {
		return aborted(err)
	}
	defer unlock()
	select {
	case s.inflight <- struct{}{}:
	case <-ctx.Done():
		return aborted(ctx.Err())
	}
	defer func() { <-s.inflight }()

	backoff := s.InitialBackoff
	var last error
	for attempt := 1; attempt <= s.MaxAttempts; attempt++ {
		if attempt > 1 {
			s.count(func(st *Stats) { st.Retries++ })
		}
		retryAfter, err := s.attempt(ctx, typ, delivery, body, attempt)
		if err == nil {
			s.observe(time.Since(start))
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return aborted(ctx.Err())
		}
		if errors.Is(err, ErrRejected) {
			return s.fail(fmt.Errorf("webhook %s: %s: %w", s.Name, delivery, err), func(st *Stats) { st.Rejected++ }, delivery)
		}
		if attempt == s.MaxAttempts {
			break
		}
		wait := s.jitter(backoff)
		if retryAfter > 0 {
			wait = min(max(wait, retryAfter), s.MaxBackoff)
		}
		backoff = min(2*backoff, s.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return aborted(ctx.Err())
		}
	}
	return s.fail(fmt.Errorf("webhook %s: %s: %w after %d attempts: %w", s.Name, delivery, ErrGaveUp, s.MaxAttempts, last),
		func(st *Stats) { st.GaveUp++ }, delivery)
}

// attempt makes one request. It returns nil on 2xx, an error wrapping ErrRejected for an answer
// that retrying would not change, another error otherwise, with the Retry-After the receiver
// asked for (0 if none).
func (s *Sink) attempt(ctx context.Context, typ, delivery string, body []byte, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	for k, vs := range s.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	ts := s.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil-webhook/1")
	req.Header.Set(HeaderType, typ)
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	if len(s.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(s.Secret, ts, body))
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read a little of the body so the connection can be reused, and keep it for the error.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		return ParseRetryAfter(resp.Header.Get("Retry-After"), s.now()), fmt.Errorf("status %d: %q", code, snippet)
	default:
		return 0, fmt.Errorf("%w: status %d: %q", ErrRejected, code, snippet)
	}
}

// ParseRetryAfter parses a Retry-After header value, delay-seconds or an HTTP date, into a
// wait from now; 0 when absent, malformed or in the past. The wait is capped at a day.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" || len(v) > 64 {
		return 0
	}
	const maxWait = 24 * time.Hour
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxWait)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxWait)
}

func (s *Sink) observe(d time.Duration) {
	secs := d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Delivered++
	s.stats.DurationCount++
	s.stats.DurationSum += secs
	for i, b := range durationBuckets() {
		if secs <= b {
			s.stats.DurationBuckets[i]++
		}
	}
}

// Stats returns a copy of the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.DurationBuckets = append([]uint64(nil), s.stats.DurationBuckets...)
	st.InFlight = len(s.inflight)
	st.Queued = int(s.queued.Load())
	return st
}

// Delivered returns how many documents the receiver accepted (for vigil_sink_delivered_total).
func (s *Sink) Delivered() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Delivered
}

// Close aborts deliveries in progress (their Write returns ErrClosed), waits for them to
// return, and releases the client's idle connections. Later writes return ErrClosed. Safe to
// call more than once and concurrently with Write.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.ownClient {
		s.Client.CloseIdleConnections()
	}
	return nil
}
