package streams

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// The push route's limit is 10 MiB by default, as documented (it was 16), --max-push-mb
// (Server.Limits[PushSetting]) changes it, and each 413 names its own limit and setting: the
// fixed 64 KiB JSON limit no longer blames --max-upload-mb.
func TestUploadLimitsPerRoute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit map[string]int64
		want  int64
		says  string
	}{
		{"default", nil, 10 << 20, "10 MiB"},
		{"--max-push-mb 2", map[string]int64{PushSetting: 2 << 20}, 2 << 20, "2 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startRegistry(t, &Registry{}, false)
			srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: quietLog(), Limits: tc.limit}
			e.reg.Mount(srv)
			if err := srv.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			if e.reg.PushMaxBytes != tc.want {
				t.Fatalf("PushMaxBytes = %d, want %d", e.reg.PushMaxBytes, tc.want)
			}
			base := srv.URL() + "/v1/streams"
			if r := call(t, "POST", base, []byte(`{"name":"door","source":"push"}`)); r.status != http.StatusCreated {
				t.Fatalf("create: %s", r)
			}
			big := append([]byte{0xff, 0xd8, 0xff}, bytes.Repeat([]byte{0}, int(tc.want)-2)...)
			r := call(t, "POST", base+"/door/frames", big, "Content-Type", "image/jpeg")
			if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), tc.says) || !strings.Contains(string(r.body), PushSetting) {
				t.Fatalf("push of %d bytes: %s, want 413 naming %s and %s", len(big), r, tc.says, PushSetting)
			}
			r = call(t, "POST", base+"/door/frames", big[:tc.want], "Content-Type", "image/jpeg")
			if r.status == http.StatusRequestEntityTooLarge {
				t.Fatalf("push of exactly the limit: %s", r)
			}
			js := []byte(`{"name":"x","source":"push","pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)
			r = call(t, "POST", base, js)
			if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "64 KiB") ||
				!strings.Contains(string(r.body), "fixed") || strings.Contains(string(r.body), "--max-upload-mb") {
				t.Fatalf("JSON body over 64 KiB: %s, want 413 naming its own fixed limit", r)
			}
		})
	}
}

// Push bodies are admitted before they are read: with PushAdmission full, a push is 503
// server_busy with Retry-After, so concurrent uploads cannot hold unbounded memory.
func TestPushAdmissionBeforeTheBody(t *testing.T) {
	gate := &admit.Gate{MaxConcurrent: 1, MaxWaiting: 1}
	e := startRegistry(t, &Registry{PushAdmission: gate}, true)
	base := e.url + "/v1/streams"
	if r := call(t, "POST", base, []byte(`{"name":"door","source":"push"}`)); r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	img := []byte{0xff, 0xd8, 0xff, 0xe0}
	l1, _ := gate.Enter()
	l2, _ := gate.Enter()
	r := call(t, "POST", base+"/door/frames", img, "Content-Type", "image/jpeg")
	if r.status != http.StatusServiceUnavailable || r.code() != CodeServerBusy || r.header.Get("Retry-After") == "" {
		t.Fatalf("push with the admission full: %s (Retry-After %q), want 503 server_busy with Retry-After", r, r.header.Get("Retry-After"))
	}
	l1()
	l2()
	if r := call(t, "POST", base+"/door/frames", img, "Content-Type", "image/jpeg"); r.status == http.StatusServiceUnavailable {
		t.Fatalf("push with room: %s", r)
	}
}
