package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// errorBody decodes an error answer's code and message.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) Error {
	t.Helper()
	var b struct {
		Error Error `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return b.Error
}

// ReadBody answers a body over its own limit, and one the server's MaxBytesReader cut, with 413
// naming the setting; it hands back a body within the limit whole.
func TestReadBody(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		serverCut  bool
		wantStatus int
		wantMsg    string
	}{
		{"within", "0123456789", false, 0, ""},
		{"over its limit", "0123456789x", false, http.StatusRequestEntityTooLarge, "this route's limit of 10 bytes (server setting --max-x-mb)"},
		{"cut by the server", "0123456789x", true, http.StatusRequestEntityTooLarge, "this route's limit of 10 bytes (server setting --max-x-mb)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.serverCut {
				req.Body = http.MaxBytesReader(rec, req.Body, 5)
			}
			data, ok := ReadBody(rec, req, 10, "--max-x-mb")
			if tc.wantStatus == 0 {
				if !ok || string(data) != tc.body {
					t.Fatalf("ReadBody = %q, %v; want the body whole", data, ok)
				}
				return
			}
			if ok || rec.Code != tc.wantStatus {
				t.Fatalf("ReadBody ok=%v status %d, want refused with %d", ok, rec.Code, tc.wantStatus)
			}
			if e := errorBody(t, rec); e.Code != "body_too_large" || !strings.Contains(e.Message, tc.wantMsg) {
				t.Fatalf("error %+v, want body_too_large naming %q", e, tc.wantMsg)
			}
		})
	}
}

// WriteErrorCase picks the first matching case, wrapped errors included, fills in the error's
// text when the case has no message, and falls back to a nil-Err default, else 500 internal.
func TestWriteErrorCase(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	cases := []ErrorCase{
		{Err: errA, Status: http.StatusNotFound, Code: "gone"},
		{Err: errB, Status: http.StatusServiceUnavailable, Code: "busy", Message: "try later"},
	}
	for _, tc := range []struct {
		err        error
		cases      []ErrorCase
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{fmt.Errorf("looking: %w", errA), cases, http.StatusNotFound, "gone", "looking: a"},
		{errB, cases, http.StatusServiceUnavailable, "busy", "try later"},
		{errors.New("other"), append(cases, ErrorCase{Status: http.StatusTeapot, Code: "dflt"}), http.StatusTeapot, "dflt", "other"},
		{errors.New("other"), cases, http.StatusInternalServerError, "internal", "other"},
	} {
		rec := httptest.NewRecorder()
		WriteErrorCase(rec, tc.err, tc.cases...)
		if e := errorBody(t, rec); rec.Code != tc.wantStatus || e.Code != tc.wantCode || e.Message != tc.wantMsg {
			t.Errorf("%v: %d %+v, want %d %s %q", tc.err, rec.Code, e, tc.wantStatus, tc.wantCode, tc.wantMsg)
		}
	}
}

// Query runs its function under the deadline (the default when none is set) and answers its
// value as JSON, or its error through fail.
func TestQuery(t *testing.T) {
	fail := func(w http.ResponseWriter, err error) { WriteError(w, http.StatusBadRequest, "bad", err.Error()) }
	var left time.Duration
	h := Query(0, time.Minute, fail, func(ctx context.Context, r *http.Request) (map[string]string, error) {
		d, _ := ctx.Deadline()
		left = time.Until(d)
		if q := r.URL.Query().Get("q"); q != "" {
			return map[string]string{"q": q}, nil
		}
		return nil, errors.New("no q")
	})
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/?q=x", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"q":"x"}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"))
	}
	if left <= 50*time.Second || left > time.Minute {
		t.Fatalf("deadline %v away, want the 1 min default", left)
	}
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if e := errorBody(t, rec); rec.Code != http.StatusBadRequest || e.Message != "no q" {
		t.Fatalf("error answer %d %+v", rec.Code, e)
	}
}

// TestWriteBusy: a full gate's answer is 503 with code busy, the message, and Retry-After.
func TestWriteBusy(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteBusy(rec, 3, "queue full")
	if e := errorBody(t, rec); rec.Code != http.StatusServiceUnavailable || e.Code != "busy" || e.Message != "queue full" ||
		rec.Header().Get("Retry-After") != "3" {
		t.Fatalf("%d %+v Retry-After %q, want 503 busy \"queue full\" with Retry-After 3", rec.Code, e, rec.Header().Get("Retry-After"))
	}
}
