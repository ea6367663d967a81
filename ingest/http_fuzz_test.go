package ingest

import (
	"strings"
	"testing"
)

// FuzzDescribeContentType: any Content-Type header yields a bounded, single-line explanation.
func FuzzDescribeContentType(f *testing.F) {
	for _, s := range []string{"", "text/html; charset=utf-8", "application/json", "video/mp4",
		"multipart/x-mixed-replace; boundary=frame", "TEXT/HTML", ";;;", "a/b; c=\"unterminated"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got := describeContentType(ct)
		if got == "" || len(got) > 300 {
			t.Fatalf("%q: %d-byte explanation", ct, len(got))
		}
		if strings.ContainsAny(got, "\r\n") {
			t.Fatalf("%q: explanation spans lines: %q", ct, got)
		}
	})
}
