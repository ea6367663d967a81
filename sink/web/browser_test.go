package web

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
