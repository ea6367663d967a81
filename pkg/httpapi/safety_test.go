package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// doHost sends a request naming host in its Host header (and optionally an Origin).
func doHost(t *testing.T, method, url, host, origin string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	if r.status >= 400 {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(r.body, &e)
		r.err.Code, r.err.Message = e.Error.Code, e.Error.Message
	}
	return r
}

// TestHostValidation: DNS rebinding. A page on attacker.example re-pointed at the server sends
// "Host: attacker.example" with the matching Origin; without keys the old same-origin rule let
// it read everything. Only IP literals, localhost, the machine's name and AllowedHosts pass.
func TestHostValidation(t *testing.T) {
	s := &Server{Log: slog.New(slog.DiscardHandler), AllowedHosts: []string{"vigil.example.com", "*.corp.example"}}
	base := start(t, s)
	port := base[strings.LastIndex(base, ":")+1:]
	rebound := "attacker.example:" + port
	doHost(t, "POST", base+"/v1/echo", rebound, "http://"+rebound).want(t, "rebound host with its own origin", 421, "host_not_allowed")
	doHost(t, "POST", base+"/v1/echo", rebound, "").want(t, "rebound host without an origin", 421, "host_not_allowed")
	doHost(t, "GET", base+"/openapi.json", rebound, "").want(t, "docs through a rebound host", 421, "host_not_allowed")
	doHost(t, "POST", base+"/v1/echo", "evil.vigil.example.com", "").want(t, "a name under an exact entry", 421, "host_not_allowed")
	doHost(t, "POST", base+"/v1/echo", "corp.example", "").want(t, "the wildcard's own parent", 421, "host_not_allowed")
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST", "app.localhost:" + port, "[::1]:" + port,
		"vigil.example.com", "Vigil.Example.com.:443", "cam.corp.example:" + port, "10.1.2.3"} {
		doHost(t, "POST", base+"/v1/echo", host, "").want(t, "host "+host, 200, "")
	}
	// Same origin still works on an allowed host.
	doHost(t, "POST", base+"/v1/echo", "vigil.example.com:"+port, "http://vigil.example.com:"+port).want(t, "same origin on an allowed name", 200, "")
	// The health probes answer any host (load balancers probe by whatever name they like).
	doHost(t, "GET", base+"/healthz", rebound, "").want(t, "healthz", 200, "")

	open := &Server{Log: slog.New(slog.DiscardHandler), AllowedHosts: []string{"*"}}
	doHost(t, "POST", start(t, open)+"/v1/echo", rebound, "").want(t, "allowed hosts *", 200, "")
	for _, bad := range []string{"http://x.example", "a b", "x/y", ""} {
		if err := (&Server{AllowedHosts: []string{bad}}).Validate(); err == nil {
			t.Errorf("Validate accepted allowed host %q", bad)
		}
	}
}

// TestBadKeysLimited: wrong API keys spend a per-address budget; once spent, every request
// from the address is refused (so a right key cannot be told apart) until it refills. Missing
// keys do not count.
func TestBadKeysLimited(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	s := &Server{Log: slog.New(slog.DiscardHandler), APIKeys: []string{"right"}, BadKeysPerMinute: 3, now: clk.now}
	base := start(t, s)
	good := map[string]string{"Authorization": "Bearer right"}
	for i := range 5 {
		do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), nil).want(t, fmt.Sprintf("no key %d", i), 401, "missing_api_key")
	}
	for i := range 3 {
		do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Authorization": fmt.Sprintf("Bearer guess%d", i)}).
			want(t, fmt.Sprintf("wrong key %d", i), 401, "invalid_api_key")
	}
	r := do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), map[string]string{"Authorization": "Bearer guess4"})
	r.want(t, "4th wrong key in a minute", 429, "rate_limited")
	if r.header.Get("Retry-After") != "20" {
		t.Fatalf("Retry-After %q, want 20", r.header.Get("Retry-After"))
	}
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), good).want(t, "right key while blocked", 429, "rate_limited")
	do(t, "GET", base+"/healthz", nil, nil).want(t, "probes while blocked", 200, "")
	clk.advance(20 * time.Second)
	do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), good).want(t, "right key after the wait", 200, "")
	for range 10 {
		do(t, "POST", base+"/v1/echo", strings.NewReader("hi"), good).want(t, "right keys spend nothing", 200, "")
	}
}

// TestTooLargeAfterWholeBody: a client that writes its whole body before reading (Python
// requests, urllib) gets the 413, not a connection reset, with and without Content-Length.
func TestTooLargeAfterWholeBody(t *testing.T) {
	s := &Server{Log: slog.New(slog.DiscardHandler), MaxUploadBytes: 1000}
	base := start(t, s)
	addr := strings.TrimPrefix(base, "http://")
	body := bytes.Repeat([]byte("x"), 24<<20) // far more than the socket buffers hold
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			w := bufio.NewWriter(c)
			if chunked {
				fmt.Fprintf(w, "POST /v1/echo HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", addr)
				for off := 0; off < len(body); off += 1 << 20 {
					fmt.Fprintf(w, "%x\r\n", 1<<20)
					w.Write(body[off : off+1<<20])
					w.WriteString("\r\n")
				}
				w.WriteString("0\r\n\r\n")
			} else {
				fmt.Fprintf(w, "POST /v1/echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", addr, len(body))
				w.Write(body)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("sending the whole body: %v (the server closed before reading it)", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413", resp.StatusCode)
			}
		})
	}
}
