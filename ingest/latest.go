package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
)

// OpenLive opens a live source and keeps it alive. open is called once now and its error is
// returned as is, so a mistyped URL or a missing camera fails at once; afterwards a Reconnector
// reopens through open, with backoff b, whenever the stream fails, and a Latest reader keeps
// only the newest frame. name identifies the source in logs and must not carry credentials; log
// defaults to slog.Default(). The caller must Close the result.
func OpenLive(ctx context.Context, name string, open func(context.Context) (Source, error), b Backoff, log *slog.Logger) (*Latest, error) {
	r := &Reconnector{Open: open, Backoff: b, Name: name, Log: log}
	if err := r.Connect(ctx); err != nil {
		return nil, err
	}
	return NewLatest(r), nil
}

// ErrClosed is returned by Read on a source that has been closed.
var ErrClosed = errors.New("source closed")

// Latest is a live Source that always returns the newest frame: a reader goroutine reads the
// inner source as fast as it delivers and keeps one frame, closing the older one when a newer
// arrives unseen. A consumer slower than the camera therefore skips frames instead of falling
// ever further behind (a capture never drops frames itself: read directly by a slow consumer,
// an RTSP capture's lag was measured to grow ~0.4 s every second).
//
// The reader goroutine owns the inner source: it alone reads it and closes it when it stops,
// so the inner source is never closed while a read runs. Close stops and joins the goroutine;
// it returns once the inner read in progress finishes, which a read timeout bounds.
//
// Read follows the Source contract. The inner source's error (after the frames read before it)
// is returned by Read and ends the source. Stats may be called from any goroutine.
type Latest struct {
	inner  Source
	live   bool
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader goroutine has exited
	wake   chan struct{} // signalled when frame or err changes

	mu       sync.Mutex
	frame    RawFrame
	has      bool
	err      error
	closeErr error // from the inner source's Close

	read, replaced atomic.Uint64
	closeOnce      sync.Once
}

// NewLatest starts the reader goroutine on src, which it owns from now on: the caller must Close
// the Latest, never src.
func NewLatest(src Source) *Latest {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Latest{inner: src, live: src.Live(), cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go l.run(ctx)
	return l
}

func (l *Latest) run(ctx context.Context) {
	defer close(l.done)
	for {
		f, err := l.inner.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				err = ErrClosed
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.signal()
			break
		}
		l.read.Add(1)
		l.mu.Lock()
		if l.has {
			l.frame.Mat.Close()
			l.replaced.Add(1)
			f.Skipped += l.frame.Skipped // the source's refusals before it stay counted
		}
		l.frame, l.has = f, true
		l.mu.Unlock()
		l.signal()
	}
	cerr := l.inner.Close()
	l.mu.Lock()
	l.closeErr = cerr
	l.mu.Unlock()
}

func (l *Latest) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Read returns the newest frame not yet returned, waiting for one if needed, or the inner
// source's error once its frames are taken, or ctx's error when ctx ends first.
func (l *Latest) Read(ctx context.Context) (RawFrame, error) {
	for {
		l.mu.Lock()
		if l.has {
			f := l.frame
			l.frame, l.has = RawFrame{}, false
			l.mu.Unlock()
			return f, nil
		}
		err := l.err
		l.mu.Unlock()
		if err != nil {
			return RawFrame{}, err
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			return RawFrame{}, ctx.Err()
		}
	}
}

// Close stops the reader goroutine, waits for it to close the inner source, and releases the
// frame not yet read. It returns the inner source's Close error. It is idempotent.
func (l *Latest) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		l.mu.Lock()
		if l.has {
			l.frame.Mat.Close()
			l.frame, l.has = RawFrame{}, false
		}
		if l.err == nil {
			l.err = ErrClosed
		}
		l.mu.Unlock()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeErr
}

// Live reports whether the inner source is live.
func (l *Latest) Live() bool { return l.live }

// Stats returns the inner source's LiveStats when it has them (a Reconnector: state,
// reconnects, failures) with this reader's FramesRead and FramesReplaced.
func (l *Latest) Stats() LiveStats {
	var s LiveStats
	if ss, ok := l.inner.(StatsSource); ok {
		s = ss.Stats()
	} else {
		s.State = StateLive
		select {
		case <-l.done:
			s.State = StateClosed
		default:
		}
	}
	s.FramesRead = l.read.Load()
	s.FramesReplaced = l.replaced.Load()
	return s
}
