package models

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that its errors are one line,
// and that whatever it accepts survives a marshal/parse round trip and keeps
// its invariants. Seeds: testdata/fuzz/FuzzParse plus the embedded manifest.
func FuzzParse(f *testing.F) {
	f.Add([]byte(manifestJSON))
	f.Add(mustJSON(f, validManifest()))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		first, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(first)
		if err != nil {
			t.Fatalf("re-parse of accepted manifest failed: %v\n%s", err, first)
		}
		second, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", first, second)
		}
		for _, fl := range m.Files {
			if _, err := m.File(fl.Name); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Package(fl.Package); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(strings.Split(fl.Dest, "/"), "..") || strings.HasPrefix(fl.Dest, "/") {
				t.Fatalf("dest %q escapes", fl.Dest)
			}
		}
	})
}
