package cli

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestStreamsKeyDefaults: vigil run keeps its streams key beside a persistent --store-dir and
// makes one of its own for a temporary store (nothing written to the home directory); an
// explicit --streams-key-file wins.
func TestStreamsKeyDefaults(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	var f streamFlags
	f.useRunStore(dir, true)
	if s, err := f.sealer(quiet); err != nil || s == nil {
		t.Fatalf("persistent store: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "streams.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the key beside the store: %v", err)
	}
	var temp streamFlags
	temp.useRunStore(t.TempDir(), false)
	if s, err := temp.sealer(quiet); err != nil || s == nil {
		t.Fatalf("temporary store: %v", err)
	}
	explicit := streamFlags{keyFile: filepath.Join(t.TempDir(), "given.key")}
	explicit.useRunStore(dir, true)
	if _, err := explicit.sealer(quiet); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(explicit.keyFile); err != nil {
		t.Fatalf("--streams-key-file not used: %v", err)
	}
}
