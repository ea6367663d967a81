package whip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// MaxPacket is the buffer size ReadRTP needs: larger than any RTP packet the endpoint receives.
const MaxPacket = 1500

// pliInterval is the least time between two picture loss indications sent for packet loss.
const pliInterval = time.Second

// Track describes a session's negotiated video track.
type Track struct {
	// Codec is the codec the publisher sends.
	Codec Codec
	// PayloadType is the RTP payload type of Codec, as negotiated (not a constant: the offer
	// chooses it).
	PayloadType uint8
	// ClockRate is the RTP clock rate (90000 for video).
	ClockRate uint32
	// SSRC identifies the publisher's RTP stream.
	SSRC uint32
}

// Stats are a session's counters.
type Stats struct {
	// Packets and Bytes count the RTP packets ReadRTP returned.
	Packets, Bytes uint64
	// Lost counts sequence numbers skipped (packets never seen, or seen only later as
	// retransmissions).
	Lost uint64
	// PLIs counts the picture loss indications sent (at start and on loss, at most one a second).
	PLIs uint64
}

// Session is one publisher's WHIP session. Its consumer (the Endpoint's OnSession receiver)
// waits for the video track with Track, reads its RTP with ReadRTP from one goroutine, and
// Closes it when done. Stop, Done, Err, Stats, ID and Stream are safe from any goroutine.
//
// A session stops when the publisher sends DELETE or closes its connection, when a newer
// publisher takes the stream, when the publisher is lost (ICE failed, or no video within
// MediaTimeout), when the consumer calls Stop or Close, or when the endpoint closes. Err then
// tells which: an error wrapping ErrEnded or ErrPeerLost, or the cause given to Stop.
type Session struct {
	e       *Endpoint
	id      string
	stream  string
	created time.Time
	pc      *webrtc.PeerConnection
	log     *slog.Logger

	mu       sync.Mutex
	stopping bool
	cause    error
	track    *webrtc.TrackRemote
	info     Track
	wg       sync.WaitGroup // the RTCP reader

	trackCh chan struct{} // closed when the video track arrived
	stopCh  chan struct{} // closed when the session stops
	closed  chan struct{} // closed when it has released everything

	// ReadRTP's loss tracking (one goroutine).
	lastSeq uint16
	haveSeq bool

	lastPLI                    atomic.Int64
	packets, bytes, lost, plis atomic.Uint64
}

// newSession creates a session and starts its supervisor; the caller has reserved its slot.
func (e *Endpoint) newSession(stream string) (*Session, error) {
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		e.release()
		return nil, fmt.Errorf("whip: new peer connection: %w", err)
	}
	s := &Session{e: e, id: rand.Text(), stream: stream, created: time.Now(), pc: pc,
		trackCh: make(chan struct{}), stopCh: make(chan struct{}), closed: make(chan struct{})}
	s.log = e.Log.With("stream", stream, "session", s.id)
	pc.OnTrack(s.onTrack)
	pc.OnConnectionStateChange(s.onState)
	go s.supervise()
	return s, nil
}

// ID is the session's id, the last segment of its resource URL.
func (s *Session) ID() string { return s.id }

// Stream is the validated stream name the publisher posted to.
func (s *Session) Stream() string { return s.stream }

// Created is when the offer arrived.
func (s *Session) Created() time.Time { return s.created }

// Done is closed when the session stops; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.stopCh }

// Err returns nil while the session runs, then why it stopped.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Lost: s.lost.Load(), PLIs: s.plis.Load()}
}

// Track waits until the publisher's first video packet arrives and describes the track. It
// returns Err once the session stops first, or ctx's error.
func (s *Session) Track(ctx context.Context) (Track, error) {
	select {
	case <-s.trackCh:
		return s.info, nil // info is written before trackCh closes
	case <-s.stopCh:
		return Track{}, s.Err()
	case <-ctx.Done():
		return Track{}, ctx.Err()
	}
}

// ReadRTP reads the next RTP packet (header and payload, decrypted, as sent) of the video track
// into b, which should hold MaxPacket bytes, and returns its length. It blocks until a packet
// arrives and returns Err once the session has stopped. Call it from one goroutine. It sends a
// picture loss indication when sequence numbers skip, so the decoder soon gets a keyframe.
func (s *Session) ReadRTP(b []byte) (int, error) {
	select {
	case <-s.trackCh:
	case <-s.stopCh:
		return 0, s.Err()
	}
	select {
	case <-s.stopCh:
		return 0, s.Err()
	default:
	}
	n, _, err := s.track.Read(b)
	if err != nil {
		select {
		case <-s.stopCh:
		default:
			s.Stop(s.readFailure(err))
		}
		return 0, s.Err()
	}
	s.account(b[:n])
	return n, nil
}

// readFailure says why the track ended when the session had not been stopped.
func (s *Session) readFailure(err error) error {
	if s.pc.ConnectionState() == webrtc.PeerConnectionStateFailed {
		return s.iceFailed()
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the publisher closed the connection", ErrEnded)
	}
	return fmt.Errorf("whip: read RTP: %w", err)
}

func (s *Session) iceFailed() error {
	c := s.e.Config
	return fmt.Errorf("%w: no traffic from the publisher for %s (ICE failed)", ErrPeerLost, c.ICEDisconnectedTimeout+c.ICEFailedTimeout)
}

// account counts pkt and asks for a keyframe when sequence numbers skip.
func (s *Session) account(pkt []byte) {
	s.packets.Add(1)
	s.bytes.Add(uint64(len(pkt)))
	if len(pkt) < 4 {
		return
	}
	seq := binary.BigEndian.Uint16(pkt[2:4])
	if s.haveSeq {
		gap := int16(seq - s.lastSeq - 1)
		if gap < 0 {
			return // late, duplicate or retransmitted: not a new loss
		}
		if gap > 0 {
			s.lost.Add(uint64(gap))
			s.sendPLI(false)
		}
	}
	s.haveSeq = true
	s.lastSeq = seq
}

// sendPLI asks the publisher for a keyframe; unless force, at most once per pliInterval.
func (s *Session) sendPLI(force bool) {
	now := time.Now().UnixNano()
	last := s.lastPLI.Load()
	if !force && now-last < int64(pliInterval) {
		return
	}
	if !s.lastPLI.CompareAndSwap(last, now) {
		return
	}
	if err := s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: s.info.SSRC}}); err == nil {
		s.plis.Add(1)
	}
}

// Stop ends the session with cause (nil: a generic ErrEnded) unless it has already stopped. It
// does not wait: the peer connection is closed in the background; Close waits.
func (s *Session) Stop(cause error) {
	if cause == nil {
		cause = fmt.Errorf("%w: stopped", ErrEnded)
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	s.cause = cause
	s.mu.Unlock()
	close(s.stopCh)
	s.e.forget(s)
	st := s.Stats()
	s.log.Info("whip session ended", "reason", cause, "packets", st.Packets, "lost", st.Lost, "plis", st.PLIs,
		"lasted", time.Since(s.created).Round(time.Millisecond))
}

// Close stops the session (ErrEnded, unless it had stopped already) and waits until it has
// closed its peer connection and ended its goroutines. It is idempotent.
func (s *Session) Close() error {
	s.Stop(fmt.Errorf("%w: closed by the consumer", ErrEnded))
	<-s.closed
	return nil
}

// supervise owns the session's teardown: it waits for the stop (or ends a session whose video
// never arrives), closes the peer connection, joins the RTCP reader and frees the slot.
func (s *Session) supervise() {
	defer s.e.release()
	t := time.NewTimer(s.e.MediaTimeout)
	defer t.Stop()
	select {
	case <-s.stopCh:
	case <-s.trackCh:
	case <-t.C:
		select {
		case <-s.trackCh:
		default:
			s.Stop(fmt.Errorf("%w: no video from the publisher within %s of its offer", ErrPeerLost, s.e.MediaTimeout))
		}
	}
	<-s.stopCh
	// Not from a pion callback: GracefulClose waits for pion's goroutines, callbacks included.
	if err := s.pc.GracefulClose(); err != nil {
		s.log.Warn("whip: close peer connection", "err", err)
	}
	s.wg.Wait()
	close(s.closed)
}

// onTrack takes the first video track; a publisher sending more gets only the first decoded.
func (s *Session) onTrack(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
	if tr.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	c := tr.Codec()
	codec, ok := supported(strings.TrimPrefix(strings.ToLower(c.MimeType), "video/"))
	if !ok {
		s.Stop(fmt.Errorf("whip: the publisher sends %s, not VP8 or H264", c.MimeType))
		return
	}
	s.mu.Lock()
	if s.stopping || s.track != nil {
		s.mu.Unlock()
		return
	}
	s.track = tr
	s.info = Track{Codec: codec, PayloadType: uint8(c.PayloadType), ClockRate: c.ClockRate, SSRC: uint32(tr.SSRC())}
	s.wg.Add(1)
	s.mu.Unlock()
	close(s.trackCh)
	s.log.Info("whip video track", "codec", codec, "payload_type", c.PayloadType, "fmtp", c.SDPFmtpLine,
		"after", time.Since(s.created).Round(time.Millisecond))
	go s.readRTCP(rcv)
	s.sendPLI(true)
}

// readRTCP drains the receiver's RTCP (sender reports), which pion's interceptors need read.
func (s *Session) readRTCP(rcv *webrtc.RTPReceiver) {
	defer s.wg.Done()
	buf := make([]byte, MaxPacket)
	for {
		if _, _, err := rcv.Read(buf); err != nil {
			return
		}
	}
}

func (s *Session) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		s.log.Info("whip publisher connected", "after", time.Since(s.created).Round(time.Millisecond))
	case webrtc.PeerConnectionStateFailed:
		s.Stop(s.iceFailed())
	case webrtc.PeerConnectionStateClosed:
		s.Stop(fmt.Errorf("%w: the publisher closed the connection", ErrEnded))
	}
}
