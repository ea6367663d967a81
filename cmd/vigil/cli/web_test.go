package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/sink/web"
)

// TestWebFlags mounts the web UI as vigil run and vigil serve do: flags (and VIGIL_WEB_*) parsed,
// the UI on a real NATS server and HTTP server, the page at the URL webURL gives; --web=false
// mounts nothing, and bad sizes are refused.
func TestWebFlags(t *testing.T) {
	ctx := context.Background()
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir()}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nc, err := bus.Connect(ctx, ns.ClientURL(), "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string {
		return map[string]string{"VIGIL_WEB_FRAMES": "32"}[k]
	}}
	parsed := func(args ...string) *webFlags {
		var wf webFlags
		fs := newFlagSet("test", "")
		wf.register(fs)
		if err := parse(fs, env, args); err != nil {
			t.Fatal(err)
		}
		return &wf
	}

	wf := parsed("--web-events", "10")
	if wf.frames != 32 || wf.events != 10 || !wf.enabled || wf.results != bus.ResultsPrefix {
		t.Fatalf("flags %+v", wf)
	}
	srv := &httpapi.Server{Addr: "127.0.0.1:0"}
	ui, err := wf.mount(srv, nc, nil, nil, privacy.Off, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer ui.Close()
	url := webURL(srv, ui)
	if url != srv.URL()+"/" {
		t.Fatalf("webURL %q", url)
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "/ui/app.js") {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}

	off := parsed("--web=false")
	if ui, err := off.mount(&httpapi.Server{}, nc, nil, nil, privacy.Off, nil); ui != nil || err != nil {
		t.Fatalf("--web=false mounted %v, %v", ui, err)
	}
	if webURL(srv, nil) != "" {
		t.Fatal("webURL of no UI")
	}
	var none *web.UI
	none.Close() // what a command defers when the UI is off
	bad := parsed("--web-max-viewers", "0")
	if _, err := bad.mount(&httpapi.Server{}, nc, nil, nil, privacy.Off, nil); err == nil || !strings.Contains(err.Error(), "--web-max-viewers 0") {
		t.Fatalf("bad flags: %v", err)
	}
}
