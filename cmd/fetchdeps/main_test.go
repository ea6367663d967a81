package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noPacker fails the test if fetchdeps tries to download anything.
type noPacker struct{ t *testing.T }

// Pack fails the test.
func (p noPacker) Pack(ctx context.Context, name, version, dir string) (string, error) {
	p.t.Errorf("unexpected npm pack %s@%s", name, version)
	return "", errors.New("no network in tests")
}

func TestRunFilesPresent(t *testing.T) {
	dir := t.TempDir()
	deps := filepath.Join(dir, "deps")
	if err := os.MkdirAll(filepath.Join(deps, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := []byte("model")
	if err := os.WriteFile(filepath.Join(deps, "models", "m.onnx"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	manifest := fmt.Sprintf(`{"schema":1,"packages":[{"name":"p","version":"1.0.0","sha256":"%s"}],
"files":[{"name":"m","kind":"model","package":"p@1.0.0","path":"package/m.onnx","dest":"models/m.onnx","sha256":"%s"}]}`,
		strings.Repeat("0", 64), hex.EncodeToString(sum[:]))
	mpath := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mpath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(t.Context(), []string{"-dest", deps, "-cache", filepath.Join(dir, "npm"), "-manifest", mpath}, noPacker{t}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "level=INFO msg=ok file=m path=" + filepath.Join(deps, "models", "m.onnx") + "\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema":9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-manifest", bad}, bad + ": manifest: schema 9 is not supported"},
		{[]string{"-manifest", filepath.Join(dir, "absent.json")}, "no such file"},
		{[]string{"extra"}, "fetchdeps takes flags only"},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var out bytes.Buffer
		err := run(t.Context(), tc.args, noPacker{t}, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if err := run(t.Context(), []string{"-h"}, noPacker{t}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
