package webtest

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testPage = `<!doctype html><html><body>
<input type="file" id="f" multiple>
<div id="drop" style="width:300px;height:200px;border:2px dashed #888">drop here</div>
<p id="out"></p>
<script>
const out = document.getElementById("out");
document.getElementById("f").addEventListener("change", (e) => { out.dataset.input = [...e.target.files].map((f) => f.name + ":" + f.size).join(","); });
const d = document.getElementById("drop");
d.addEventListener("dragover", (e) => e.preventDefault());
d.addEventListener("drop", (e) => { e.preventDefault(); out.dataset.dropped = [...e.dataTransfer.files].map((f) => f.name).join(","); });
setTimeout(() => { document.title = "ready"; console.log("hello", 42); }, 100);
</script></body></html>`

// TestBrowser drives a real Chromium: navigation, evaluation, waiting, file input, dropping
// files, console capture and a screenshot.
func TestBrowser(t *testing.T) {
	if _, err := FindChromium(); errors.Is(err, ErrNoBrowser) {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(testPage))
	}))
	defer srv.Close()
	b, err := Start(ctx, Options{UserDataDir: t.TempDir(), Width: 800, Height: 600})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, srv.URL); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := p.WaitFor(ctx, `document.title === "ready" && document.title`, 10*time.Second, &title); err != nil || title != "ready" {
		t.Fatalf("title %q: %v", title, err)
	}
	var sum int
	if err := p.Eval(ctx, `Promise.resolve(40 + 2)`, &sum); err != nil || sum != 42 {
		t.Fatalf("eval: %d %v", sum, err)
	}
	if err := p.Eval(ctx, `(() => { throw new Error("boom") })()`, nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("exception: %v", err)
	}
	if err := p.WaitFor(ctx, `false`, 200*time.Millisecond, nil); err == nil {
		t.Fatal("WaitFor(false) succeeded")
	}
	dir := t.TempDir()
	a, c := filepath.Join(dir, "a.txt"), filepath.Join(dir, "c.txt")
	for _, f := range []string{a, c} {
		if err := os.WriteFile(f, []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SetInputFiles(ctx, "#f", []string{a, c}); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := p.WaitFor(ctx, `document.getElementById("out").dataset.input`, 5*time.Second, &got); err != nil || got != "a.txt:3,c.txt:3" {
		t.Fatalf("input files: %q %v", got, err)
	}
	if err := p.DropFiles(ctx, "#drop", []string{c}); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `document.getElementById("out").dataset.dropped`, 5*time.Second, &got); err != nil || got != "c.txt" {
		t.Fatalf("dropped files: %q %v", got, err)
	}
	shot := filepath.Join(dir, "page.png")
	if err := p.Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil || img.Bounds().Dx() != 800 {
		t.Fatalf("screenshot: %v %v", err, img.Bounds())
	}
	if con := strings.Join(p.Console(), "\n"); !strings.Contains(con, "console.log: hello 42") {
		t.Fatalf("console: %s", con)
	}
}
