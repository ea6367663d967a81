package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindBin(t *testing.T) {
	empty := t.TempDir()
	if _, err := findBin([]string{empty, filepath.Join(empty, "missing")}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("empty directories: %v", err)
	}
	full := t.TempDir()
	for _, name := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(full, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := findBin([]string{empty, full}); err != nil || got != full {
		t.Fatalf("findBin = %q, %v", got, err)
	}
}

func TestOff(t *testing.T) {
	t.Setenv("VIGIL_TEST_POSTGRES", "off")
	t.Setenv("VIGIL_TEST_POSTGRES_DSN", "")
	if _, err := Start(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Start with VIGIL_TEST_POSTGRES=off: %v", err)
	}
}
