package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestLogLevelsAndCounts: at the default (info) level, successful requests leave no log
// line (a polling web view would flood it), client errors log at info and server errors at
// warn; every request is counted by route pattern and status, unmatched paths under one route.
func TestRequestLogLevelsAndCounts(t *testing.T) {
	var logs syncBuffer
	s := &Server{Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	base := start(t, s)
	for range 3 {
		do(t, "POST", base+"/v1/echo", strings.NewReader("x"), nil).want(t, "echo", 200, "")
	}
	do(t, "GET", base+"/v1/panic", nil, nil).want(t, "panic", 500, "internal")
	do(t, "GET", base+"/nowhere/1", nil, nil).want(t, "unmatched 1", 404, "not_found")
	do(t, "GET", base+"/nowhere/2", nil, nil).want(t, "unmatched 2", 404, "not_found")
	do(t, "GET", base+PathHealth, nil, nil).want(t, "health", 200, "")

	levels := map[int]string{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line struct {
			Msg    string  `json:"msg"`
			Level  string  `json:"level"`
			Status float64 `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line.Msg == "http request" {
			levels[int(line.Status)] = line.Level
		}
	}
	if _, ok := levels[200]; ok {
		t.Errorf("a successful request was logged at %s, want debug only", levels[200])
	}
	if levels[404] != "INFO" || levels[500] != "WARN" {
		t.Errorf("request log levels %v, want 404 at INFO and 500 at WARN", levels)
	}

	got := map[string]uint64{}
	for _, c := range s.Requests() {
		got[c.Route+" "+strconv.Itoa(c.Code)] = c.Count
	}
	for k, want := range map[string]uint64{"POST /v1/echo 200": 3, "GET /v1/panic 500": 1, RouteUnmatched + " 404": 2} {
		if got[k] != want {
			t.Errorf("requests %q = %d, want %d (all: %v)", k, got[k], want, got)
		}
	}
	var health uint64
	for k, n := range got {
		if strings.Contains(k, PathHealth) {
			health += n
		}
	}
	if health != 1 {
		t.Errorf("health probe counted %d times, want 1 (all: %v)", health, got)
	}
}
