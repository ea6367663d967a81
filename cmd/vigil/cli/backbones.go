package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/store"
)

const backboneUsage = `Usage: vigil classifiers backbone SUBCOMMAND [flags] ...

Manages the ImageNet backbones that frame classifiers are trained on ("Train from a ZIP" in the
web UI, POST /v1/classifier-projects): uploaded once to the JetStream object store with their
SHA-256, every server training projects sees them.

  add FILE.onnx [--name NAME]   upload an ImageNet classifier (one input [N,3,224,224], a last
                                linear layer), e.g. MobileNetV2 from the ONNX model zoo; NAME
                                (a-z, 0-9, _ and -) defaults to the file name without .onnx
  list                          list the uploaded backbones
  delete NAME...                delete uploaded backbones
`

// classifiersBackbone dispatches the backbone subcommands.
func classifiersBackbone(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, backboneUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := map[string]func(context.Context, Env, []string) error{"add": backboneAdd, "list": backboneList, "delete": backboneDelete}[args[0]]
	if sub == nil {
		fmt.Fprintf(env.Stderr, "vigil classifiers backbone: unknown subcommand %q\n\n%s", args[0], backboneUsage)
		return errUsage
	}
	return sub(ctx, env, args[1:])
}

// backboneFlags are the flags of the backbone subcommands.
type backboneFlags struct {
	lf     logFlags
	url    string
	bucket string
}

func (f *backboneFlags) register(fs *flag.FlagSet) {
	f.lf.register(fs)
	fs.StringVar(&f.url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated; the server needs JetStream")
	fs.StringVar(&f.bucket, "bucket", store.DefaultBackboneBucket, "JetStream object store bucket holding the backbones")
}

// open parses args (lo to hi positional arguments, hi < 0: unbounded), connects and opens the
// backbone store; done releases the connection.
func (f *backboneFlags) open(ctx context.Context, fs *flag.FlagSet, env Env, args []string, lo, hi int, what string) ([]string, *store.Backbones, func(), error) {
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := wantArgs(env, fs, pos, lo, hi, what); err != nil {
		return nil, nil, nil, err
	}
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	nc, err := connect(ctx, f.url, "classifiers", log)
	if err != nil {
		return nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	b, err := store.OpenBackbones(ctx, js, store.Config{Bucket: f.bucket})
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return pos, b, nc.Close, nil
}

func backboneAdd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers backbone add", "Uploads an ImageNet classifier .onnx as a backbone for training frame classifiers, after checking it.")
	var f backboneFlags
	var name string
	f.register(fs)
	fs.StringVar(&name, "name", "", "backbone name (default: the file name without .onnx)")
	pos, b, done, err := f.open(ctx, fs, env, args, 1, 1, "one .onnx file")
	if err != nil {
		return err
	}
	defer done()
	if name == "" {
		name = backboneName(pos[0])
	}
	model, err := readFileLimited(pos[0], store.DefaultMaxModelBytes)
	if err != nil {
		return err
	}
	if err := classify.CheckImageNetBackbone(name, model); err != nil {
		return err
	}
	e, err := b.Put(ctx, name, model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdoutOr(env.Stdout), "backbone %s stored: %d bytes, sha256 %s; \"Train from a ZIP\" offers it now\n", e.Name, e.Size, e.SHA256)
	return nil
}

func backboneList(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers backbone list", "Lists the uploaded backbones: name, size, SHA-256, when stored.")
	var f backboneFlags
	var asJSON bool
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the entries as JSON")
	_, b, done, err := f.open(ctx, fs, env, args, 0, 0, "no arguments")
	if err != nil {
		return err
	}
	defer done()
	list, err := b.List(ctx)
	if err != nil {
		return err
	}
	out := stdoutOr(env.Stdout)
	if asJSON {
		if list == nil {
			list = []store.BackboneEntry{}
		}
		return json.NewEncoder(out).Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tSTORED")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Name, e.Size, e.SHA256, e.ModTime.Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func backboneDelete(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers backbone delete", "Deletes uploaded backbones (classifiers trained on them keep working).")
	var f backboneFlags
	f.register(fs)
	pos, b, done, err := f.open(ctx, fs, env, args, 1, -1, "backbone names")
	if err != nil {
		return err
	}
	defer done()
	for _, name := range pos {
		if err := b.Delete(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stdoutOr(env.Stdout), "backbone %s deleted\n", name)
	}
	return nil
}

// backboneName derives a backbone name from a file name: without its extension, in lower case,
// runs of other characters than a-z, 0-9, '_' and '-' as '-', at most 64 characters.
func backboneName(path string) string {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	var b strings.Builder
	dash := false
	for _, r := range base {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-_")
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}
