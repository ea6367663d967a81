package web

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/web/webtest"
)

// openPage opens url in a headless Chromium (skipping the test when there is none) and waits
// until the page says it is ready. The browser closes when the test ends; a failed test logs
// the page's console.
func openPage(t *testing.T, url string) *webtest.Page {
	t.Helper()
	if _, err := webtest.FindChromium(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := webtest.Start(ctx, webtest.Options{UserDataDir: t.TempDir(), Width: 1500, Height: 1000})
	if err != nil {
		t.Fatal(err)
	}
	page, err := b.NewPage(ctx)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("page console:\n%s", strings.Join(page.Console(), "\n"))
		}
		b.Close()
	})
	if err := page.Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := page.WaitFor(ctx, `document.body.dataset.ready === "1"`, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	return page
}

// shot saves a screenshot of the page as name in $VIGIL_SCREENSHOTS (else a temporary
// directory) and logs where.
func shot(t *testing.T, page *webtest.Page, name string) {
	t.Helper()
	dir := os.Getenv("VIGIL_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(dir, name)
	if err := page.Screenshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// keepLive publishes frame jpg (w x h) with result res on res.Stream every 200 ms, sequence
// numbers from res.Seq on, until the test ends: the page only picks a live stream by itself, and
// on a loaded machine one frame may be stale before the browser has started.
func (f *fixture) keepLive(t *testing.T, jpg []byte, w, h int, res result.Result) {
	t.Helper()
	frames, err := bus.Subject(bus.FramesPrefix, res.Stream)
	if err != nil {
		t.Fatal(err)
	}
	results, err := bus.Subject(bus.ResultsPrefix, res.Stream)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for seq := res.Seq; ; seq++ {
			now := time.Now().UTC()
			m, err := frame.Frame{Stream: res.Stream, Seq: seq, Captured: now, Width: w, Height: h, Encoding: frame.EncodingJPEG, Data: jpg}.Msg(frames)
			if err == nil {
				err = f.pub.PublishMsg(m)
			}
			r := res
			r.Seq, r.CapturedAt, r.AnalyzedAt = seq, now, now
			b, jerr := json.Marshal(r)
			if err == nil && jerr == nil {
				err = f.pub.Publish(results, b)
			}
			if err != nil || jerr != nil {
				t.Errorf("keepLive: %v %v", err, jerr)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
