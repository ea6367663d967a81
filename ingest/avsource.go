package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-video/vigil/pkg/vision/avdecode"
)

// avSource reads a video file through FFmpeg's libraries directly (pkg/vision/avdecode) rather
// than OpenCV's capture, so that with OpenOptions.Wants the frames the sampler will refuse are
// left undecoded where nothing depends on them, and none it refuses is converted to BGR.
type avSource struct {
	path     string
	opts     OpenOptions
	dec      *avdecode.Decoder
	period   time.Duration // nominal frame period
	frames   int           // frames returned or refused since open
	inLoop   int           // frames seen since the last rewind
	loopBase time.Duration // media time accumulated over previous loops
	lastPos  time.Duration // media time of the last frame in this loop
	wallBase time.Time     // wall clock at media time 0 (Realtime pacing)
	reopened bool          // the file was opened again because a rewind yielded no frame
}

// decoder returns the avdecode options of a file opened with o: its thread count, and, when
// frames are sampled before decoding, the refused frames later ones need decoded without
// deblocking (avdecode.Options.FastRefused: about a fifth less decode CPU; the kept frames
// stay within 35 dB PSNR of the exact decode).
func (o OpenOptions) decoder() avdecode.Options {
	return avdecode.Options{Threads: o.DecodeThreads, FastRefused: o.Wants != nil}
}

// openAV opens path with avdecode.
func openAV(path string, opts OpenOptions) (*avSource, error) {
	dec, err := avdecode.Open(path, opts.decoder())
	if err != nil {
		return nil, err
	}
	s := &avSource{path: path, opts: opts, dec: dec, period: dec.Period(), wallBase: time.Now()}
	if s.period <= 0 || s.period > time.Second {
		s.period = 40 * time.Millisecond
	}
	return s, nil
}

func (s *avSource) Live() bool { return false }

func (s *avSource) Read(ctx context.Context) (RawFrame, error) {
	skipped := 0
	var want func(time.Duration) bool
	if s.opts.Wants != nil && s.opts.Sample != nil {
		want = func(pos time.Duration) bool { return s.opts.Wants(s.loopBase+pos, s.period) }
	}
	for {
		before := s.dec.Discarded
		if err := s.opts.Decode.acquire(ctx); err != nil {
			return RawFrame{}, err
		}
		pos, err := s.dec.Next(ctx, want)
		s.opts.Decode.release()
		skipped += s.dec.Discarded - before
		if errors.Is(err, avdecode.ErrEnd) {
			if s.frames == 0 {
				return RawFrame{}, fmt.Errorf("source %s: no decodable video frame (corrupt or not a video)", s.path)
			}
			if !s.opts.Loop || s.inLoop == 0 && s.reopened {
				return RawFrame{}, ErrEndOfStream
			}
			if err := s.rewind(); err != nil {
				return RawFrame{}, err
			}
			continue
		}
		if err != nil {
			return RawFrame{}, fmt.Errorf("source %s: %w", s.path, err)
		}
		if pos < 0 || (s.inLoop > 0 && pos <= s.lastPos) {
			pos = s.lastPos + s.period // a frame without a usable timestamp
			if s.inLoop == 0 {
				pos = 0
			}
		}
		s.lastPos = pos
		s.inLoop++
		s.frames++
		media := s.loopBase + pos
		if s.opts.Sample != nil && !s.opts.Sample(media) {
			skipped++
			continue
		}
		if s.opts.Realtime {
			if err := sleepUntil(ctx, s.wallBase.Add(media)); err != nil {
				return RawFrame{}, err
			}
		}
		if err := s.opts.Decode.acquire(ctx); err != nil {
			return RawFrame{}, err
		}
		m, err := s.dec.BGR()
		s.opts.Decode.release()
		if err != nil {
			m.Close()
			return RawFrame{}, fmt.Errorf("source %s: %w", s.path, err)
		}
		return RawFrame{Mat: m, Media: media, Captured: time.Now(), Sampled: s.opts.Sample != nil, Skipped: skipped}, nil
	}
}

// rewind restarts a looped file and continues its media timeline after the last frame. A
// format that cannot seek back (a single JPEG read as an image pipe) yields nothing after the
// rewind: then the file is opened again.
func (s *avSource) rewind() error {
	if s.inLoop == 0 {
		dec, err := avdecode.Open(s.path, s.opts.decoder())
		if err != nil {
			return fmt.Errorf("source %s: reopen to loop: %w", s.path, err)
		}
		s.dec.Close()
		s.dec, s.reopened = dec, true
		return nil
	}
	if err := s.dec.Rewind(); err != nil {
		return fmt.Errorf("source %s: %w", s.path, err)
	}
	s.loopBase += s.lastPos + s.period
	s.inLoop, s.lastPos, s.reopened = 0, 0, false
	return nil
}

func (s *avSource) Close() error { return s.dec.Close() }

// sleepUntil waits until the wall clock reaches due, or ctx ends.
func sleepUntil(ctx context.Context, due time.Time) error { return sleepCtx(ctx, time.Until(due)) }
