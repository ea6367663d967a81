package ingest

import (
	"context"
	"errors"
	"time"
)

// The wrappers the Manager puts around a file source: decode timing, looping by reopening, and
// pacing at the file's own frame rate.

// timedSource observes how long each Read of a file source takes, which is the decode (the file
// is opened unpaced; pacedSource waits afterwards).
type timedSource struct {
	Source
	obs *streamObs
}

// Read reads the next frame and observes the time it took.
func (t timedSource) Read(ctx context.Context) (RawFrame, error) {
	start := time.Now()
	f, err := t.Source.Read(ctx)
	if err == nil {
		// One observation per decoded frame: the frames the source skipped before this one
		// (OpenOptions.Sample) share the time.
		per := time.Since(start) / time.Duration(f.Skipped+1)
		for range f.Skipped + 1 {
			t.obs.decodeTime(per)
		}
	}
	return f, err
}

// pacedSource paces a file at its own frame rate, as OpenOptions.Realtime does, after the
// decode (so timedSource measures decoding alone): frame i is returned no earlier than the first
// frame's wall time plus its media time, and Captured is set to when it is returned.
type pacedSource struct {
	Source
	base   time.Time
	seeded bool
}

// Read returns the next frame once its time has come.
func (p *pacedSource) Read(ctx context.Context) (RawFrame, error) {
	f, err := p.Source.Read(ctx)
	if err != nil {
		return f, err
	}
	if !p.seeded || f.Media < 0 {
		p.base, p.seeded = time.Now().Add(-f.Media), true
	}
	if d := time.Until(p.base.Add(f.Media)); d > 0 {
		if err := sleepCtx(ctx, d); err != nil {
			f.Mat.Close()
			return RawFrame{}, err
		}
	}
	f.Captured = time.Now()
	return f, nil
}

// loopSource plays a file again and again by reopening it at its end, continuing the media
// timeline one frame period after the last frame. (OpenOptions.Loop rewinds the capture
// instead, and OpenCV reports the first frame after the rewind at the old end position, a jump
// of the whole clip's length that stalls a paced stream and then bursts; reopening avoids it.)
type loopSource struct {
	cur    Source
	open   func(ctx context.Context) (Source, error)
	base   time.Duration // media time of this pass's start
	last   time.Duration // media time of the last frame returned
	period time.Duration // the last interval between frames
	frames int           // frames read in this pass
}

// Read returns the next frame, reopening the file at its end.
func (l *loopSource) Read(ctx context.Context) (RawFrame, error) {
	for {
		if l.cur == nil {
			src, err := l.open(ctx)
			if err != nil {
				return RawFrame{}, err
			}
			l.cur = src
		}
		f, err := l.cur.Read(ctx)
		if errors.Is(err, ErrEndOfStream) && l.frames > 0 {
			_ = l.cur.Close()
			l.cur, l.frames = nil, 0
			l.base = l.last + max(l.period, time.Millisecond)
			continue
		}
		if err != nil {
			return RawFrame{}, err
		}
		f.Media += l.base
		if d := f.Media - l.last; l.frames > 0 && d > 0 && d < time.Second {
			l.period = d
		}
		l.last = f.Media
		l.frames++
		return f, nil
	}
}

// Close closes the file being read.
func (l *loopSource) Close() error {
	if l.cur == nil {
		return nil
	}
	err := l.cur.Close()
	l.cur = nil
	return err
}

// Live reports false: a file.
func (l *loopSource) Live() bool { return false }
