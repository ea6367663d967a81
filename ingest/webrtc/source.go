package webrtc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/webrtc/gstdec"
	"github.com/vigil-video/vigil/ingest/webrtc/whip"
)

// Source is one WHIP publisher's video as an ingest.Source: Live is true, Read returns decoded
// 8-bit BGR frames, the newest first (a frame the reader was too slow for is dropped and
// counted, never queued), and fails once the session ends, with an error wrapping
// ingest.ErrEndOfStream when the publisher left in order (DELETE, closed connection, replaced by a
// newer publisher, server shutdown) and whip.ErrPeerLost when it vanished.
//
// Behind it run two goroutines: one moves the session's RTP packets into the decoder's pipe,
// the other runs the decoder, which alone creates, reads and closes the OpenCV capture. Close
// ends the session and joins both; it is idempotent and also safe while the Endpoint closes.
// Stream, SessionID, Codec and Stats are safe from any goroutine.
type Source struct {
	e      *Endpoint
	sess   *whip.Session
	opened time.Time

	mu      sync.Mutex
	pending gocv.Mat // the newest frame not yet read, when has
	has     bool
	at      time.Time // when pending was decoded
	closed  bool      // after Close: late frames are released at once
	codec   string
	notify  chan struct{}

	wg              sync.WaitGroup // the pump and the decoder
	frames, dropped atomic.Uint64
}

var _ ingest.Source = (*Source)(nil)

func newSource(e *Endpoint, ws *whip.Session) *Source {
	s := &Source{e: e, sess: ws, opened: ws.Created(), notify: make(chan struct{}, 1)}
	s.wg.Add(1)
	go s.pump()
	return s
}

// Stream is the stream name the publisher posted to (validated).
func (s *Source) Stream() string { return s.sess.Stream() }

// SessionID is the WHIP session's id: its resource is /whip/{Stream}/{SessionID}.
func (s *Source) SessionID() string { return s.sess.ID() }

// Codec is the negotiated codec ("VP8" or "H264"), empty until the first video packet arrived.
func (s *Source) Codec() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codec
}

// Stats are a source's counters.
type Stats struct {
	whip.Stats
	// Frames counts the frames Read returned; Dropped those decoded but replaced by a newer one
	// before Read took them.
	Frames, Dropped uint64
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	return Stats{Stats: s.sess.Stats(), Frames: s.frames.Load(), Dropped: s.dropped.Load()}
}

// Live reports true: a publisher sends in real time.
func (s *Source) Live() bool { return true }

// Read returns the newest decoded frame, waiting for one; RawFrame.Media is the time since the
// publisher's offer, Captured when the frame left the decoder. It returns ctx's error when ctx
// ends first (the session goes on), and the session's end (see Source) once it has stopped.
func (s *Source) Read(ctx context.Context) (ingest.RawFrame, error) {
	for {
		select {
		case <-s.sess.Done():
			return ingest.RawFrame{}, s.endErr()
		default:
		}
		s.mu.Lock()
		if s.has {
			m, at := s.pending, s.at
			s.pending, s.has = gocv.Mat{}, false
			s.mu.Unlock()
			s.frames.Add(1)
			return ingest.RawFrame{Mat: m, Media: at.Sub(s.opened), Captured: at}, nil
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-s.sess.Done():
		case <-ctx.Done():
			return ingest.RawFrame{}, ctx.Err()
		}
	}
}

// endErr maps the session's end to Read's error.
func (s *Source) endErr() error {
	err := s.sess.Err()
	if errors.Is(err, whip.ErrEnded) {
		return fmt.Errorf("webrtc source %s: %w: %w", s.Stream(), ingest.ErrEndOfStream, err)
	}
	return fmt.Errorf("webrtc source %s: %w", s.Stream(), err)
}

// Close ends the session (if it still runs), waits for the pump and the decoder to finish and
// releases any frame not read. It returns nil.
func (s *Source) Close() error {
	_ = s.sess.Close()
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	if s.has {
		s.pending.Close()
		s.pending, s.has = gocv.Mat{}, false
	}
	s.mu.Unlock()
	s.e.forget(s)
	return nil
}

// pump waits for the video track, starts the decoder for its codec and payload type, and moves
// every RTP packet into it until the session stops; then it ends the decoder's input.
func (s *Source) pump() {
	defer s.wg.Done()
	tr, err := s.sess.Track(context.Background()) // returns when the session stops
	if err != nil {
		return
	}
	codec, err := gstdec.ParseCodec(string(tr.Codec))
	if err != nil {
		s.sess.Stop(err)
		return
	}
	dec, err := gstdec.New(codec, tr.PayloadType)
	if err != nil {
		s.sess.Stop(fmt.Errorf("webrtc: %w", err))
		return
	}
	s.mu.Lock()
	s.codec = string(codec)
	s.mu.Unlock()
	s.wg.Add(1) // the pump's own count is held, so this cannot race Close's Wait
	go s.decode(dec)
	defer dec.CloseWrite()
	buf := make([]byte, whip.MaxPacket)
	for {
		n, err := s.sess.ReadRTP(buf)
		if err != nil {
			return
		}
		if err := dec.WriteRTP(buf[:n]); err != nil {
			s.sess.Stop(fmt.Errorf("webrtc: the decoder stopped taking packets: %w", err))
			return
		}
	}
}

// decode runs the decoder until its input ends; a decoder failure ends the session.
func (s *Source) decode(dec *gstdec.Decoder) {
	defer s.wg.Done()
	if err := dec.Run(s.put); err != nil {
		s.sess.Stop(fmt.Errorf("webrtc: decode %s: %w", dec.Codec(), err))
	}
}

// put makes m the pending frame, releasing one Read did not take.
func (s *Source) put(m gocv.Mat) {
	now := time.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		m.Close()
		return
	}
	if s.has {
		s.pending.Close()
		s.dropped.Add(1)
	}
	s.pending, s.at, s.has = m, now, true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
