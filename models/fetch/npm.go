package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// NPM is the Packer that runs
//
//	npm pack <name>@<version> --pack-destination <dir> --ignore-scripts
//
// in dir, downloading the tarball from the npm registry (or npm's own
// cache). The zero value runs "npm" from PATH.
type NPM struct {
	// Command is the npm executable; "npm", looked up in PATH, when empty.
	Command string
}

// Pack implements Packer. Its errors are one line and carry the end of
// npm's own message.
func (n NPM) Pack(ctx context.Context, name, version, dir string) (string, error) {
	command := n.Command
	if command == "" {
		command = "npm"
	}
	spec := name + "@" + version
	if strings.HasPrefix(spec, "-") {
		return "", fmt.Errorf("npm pack: refusing package spec %q", spec)
	}
	// npm runs in dir, so the destination must not be relative to the caller's directory.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w", spec, err)
	}
	dir = abs
	cmd := exec.CommandContext(ctx, command, "pack", spec, "--pack-destination", dir, "--ignore-scripts", "--loglevel", "error")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("npm pack %s: %w: install Node.js and npm (\"make setup\" does)", spec, err)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", fmt.Errorf("npm pack %s: %w", spec, ctxErr)
		}
		return "", fmt.Errorf("npm pack %s: %w: %s: check the network and the npm registry", spec, err, oneLine(stderr.String(), 400))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w", spec, err)
	}
	var tgz []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".tgz") {
			tgz = append(tgz, e.Name())
		}
	}
	if len(tgz) != 1 {
		return "", fmt.Errorf("npm pack %s: want one .tgz in %s, found %d", spec, dir, len(tgz))
	}
	return filepath.Join(dir, tgz[0]), nil
}

// oneLine joins the non-empty lines of s with " | " and keeps at most the
// last max bytes, so that a tool's multi-line message fits in one error line.
func oneLine(s string, max int) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, " | ")
	if s == "" {
		return "no message"
	}
	if len(s) > max {
		s = "…" + strings.ToValidUTF8(s[len(s)-max:], "")
	}
	return s
}
