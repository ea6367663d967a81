package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackoffSchedule: waits between attempts double from InitialBackoff up to MaxBackoff, and a
// Retry-After answer lengthens the wait (capped by MaxBackoff). Only lower bounds are checked:
// a loaded machine may be slower, never faster.
func TestBackoffSchedule(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		n := len(at)
		mu.Unlock()
		switch n {
		case 1, 2, 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 4:
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	s := newSink(t, &Sink{URL: srv.URL, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 60 * time.Millisecond})
	if err := s.Write(context.Background(), res("a", 1, face("", 1, 0))); err != nil {
		t.Fatal(err)
	}
	if len(at) != 5 {
		t.Fatalf("%d attempts", len(at))
	}
	for i, want := range []time.Duration{20, 40, 60, 60} { // 20, 40, 80 capped to 60, Retry-After capped to 60
		if gap := at[i+1].Sub(at[i]); gap < want*time.Millisecond {
			t.Errorf("wait before attempt %d: %s, want at least %dms", i+2, gap, want)
		}
	}
}

// fastReceiver answers 204 at once.
func fastReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchSink(b *testing.B, s *Sink) *Sink {
	b.Helper()
	if s.Secret == nil {
		s.Secret = secret
	}
	s.Log = slog.New(slog.DiscardHandler)
	if err := s.Initialize(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

func report(b *testing.B, s *Sink) {
	st := s.Stats()
	b.ReportMetric(float64(st.Delivered)/b.Elapsed().Seconds(), "deliveries/s")
	if b.N > 0 {
		b.ReportMetric(float64(st.Retries)/float64(b.N), "retries/op")
	}
}

// BenchmarkFastSerial: one caller (the sink role's contract: Write returns once delivered),
// signed, against a receiver that answers at once: the round-trip bound.
func BenchmarkFastSerial(b *testing.B) {
	s := benchSink(b, &Sink{URL: fastReceiver(b).URL})
	r := res("lobby", 1, face("Ada", 0.99, 0.8))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i + 1)
		if err := s.Write(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	report(b, s)
}

// BenchmarkFastStreams: 8 callers on 8 streams, MaxInFlight 8.
func BenchmarkFastStreams(b *testing.B) {
	s := benchSink(b, &Sink{URL: fastReceiver(b).URL, MaxInFlight: 8})
	benchStreams(b, s, 8)
	report(b, s)
}

func benchStreams(b *testing.B, s *Sink, streams int) {
	var next atomic.Uint64
	var wg sync.WaitGroup
	per := (b.N + streams - 1) / streams
	b.ResetTimer()
	for g := 0; g < streams; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := res(fmt.Sprintf("s%d", g), 0, face("", 0.99, 0))
			for i := 0; i < per; i++ {
				r.Seq = next.Add(1)
				if err := s.Write(context.Background(), r); err != nil {
					b.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// slowReceiver answers after d.
func slowReceiver(b *testing.B, d time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		t := time.NewTimer(d) // the receiver's own processing time
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkSlowSerial: a receiver taking 20 ms per request, one caller.
func BenchmarkSlowSerial(b *testing.B) {
	s := benchSink(b, &Sink{URL: slowReceiver(b, 20*time.Millisecond).URL})
	r := res("lobby", 1, face("", 0.99, 0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i + 1)
		if err := s.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	report(b, s)
}

// BenchmarkSlowStreams: the 20 ms receiver, 8 streams, MaxInFlight 8.
func BenchmarkSlowStreams(b *testing.B) {
	s := benchSink(b, &Sink{URL: slowReceiver(b, 20*time.Millisecond).URL, MaxInFlight: 8})
	benchStreams(b, s, 8)
	report(b, s)
}

// BenchmarkFlaky: the receiver fails the first attempt of every delivery with 503; the sink
// retries after InitialBackoff 5 ms (jittered down to 2.5 ms).
func BenchmarkFlaky(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get(HeaderAttempt) == "1" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	s := benchSink(b, &Sink{URL: srv.URL, InitialBackoff: 5 * time.Millisecond})
	r := res("lobby", 1, face("", 0.99, 0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i + 1)
		if err := s.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	report(b, s)
}

// BenchmarkGiveUp: a receiver that always answers 500; MaxAttempts 4, backoff 5 ms doubling:
// the time one document takes to be given up.
func BenchmarkGiveUp(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	b.Cleanup(srv.Close)
	s := benchSink(b, &Sink{URL: srv.URL, MaxAttempts: 4, InitialBackoff: 5 * time.Millisecond, Discard: true})
	r := res("lobby", 1, face("", 0.99, 0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i + 1)
		if err := s.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats()
	b.ReportMetric(float64(st.GaveUp)/float64(b.N), "gave_up/op")
	b.ReportMetric(float64(st.Retries)/float64(b.N), "retries/op")
}

// BenchmarkSignVerify: the cost of signing and verifying a 2 KiB body.
func BenchmarkSignVerify(b *testing.B) {
	body := make([]byte, 2048)
	now := time.Unix(1795306514, 0)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		sig := Sign(secret, now.Unix(), body)
		if err := Verify(secret, "1795306514", sig, body, now, 0); err != nil {
			b.Fatal(err)
		}
	}
}
