package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/dataset"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/analyze/classify/train"
	"github.com/vigil-video/vigil/models"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/result"
)

const classifiersUsage = `Usage: vigil classifiers SUBCOMMAND [flags] ...

Manages custom image classifiers in the NATS JetStream object store every analyzer watches: a
registration or deletion reaches every analyzer within moments, without a restart.

  list                          list the registered classifiers
  register MANIFEST MODEL       register an ONNX classifier described by a YAML or JSON manifest
                                (it is loaded and run once first; what does not fit is refused)
  delete NAME...                delete classifiers
  train NAME DATA --backbone M  train a classifier from DATA (a folder, or a ZIP, of one folder of
                                JPEG/PNG images per class) on backbone M (an ImageNet .onnx file,
                                or "face" for face classifiers on the face embedding), print its
                                report and register it (progress on stderr)
  classify IMAGE...             run the registered classifiers on images locally, print JSON lines
  backbone add|list|delete      manage the ImageNet backbones frame classifiers train on in the
                                web UI and the HTTP API (see vigil classifiers backbone --help)

vigil classifiers SUBCOMMAND --help lists its flags (--nats-url, --bucket, ...).
`

// classifiersCmd dispatches the classifiers subcommands.
func classifiersCmd(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, classifiersUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := map[string]func(context.Context, Env, []string) error{
		"list": classifiersList, "register": classifiersRegister, "delete": classifiersDelete,
		"train": classifiersTrain, "classify": classifiersClassify, "backbone": classifiersBackbone,
	}[args[0]]
	if sub == nil {
		fmt.Fprintf(env.Stderr, "vigil classifiers: unknown subcommand %q\n\n%s", args[0], classifiersUsage)
		return errUsage
	}
	return sub(ctx, env, args[1:])
}

// parse parses a classifiers subcommand's flags and positional arguments, checks there are lo to
// hi of them (hi < 0: unbounded; what names them in the usage error) and builds the logger.
func (f *classifierFlags) parse(fs *flag.FlagSet, env Env, args []string, lo, hi int, what string) ([]string, *slog.Logger, error) {
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return nil, nil, err
	}
	if err := wantArgs(env, fs, pos, lo, hi, what); err != nil {
		return nil, nil, err
	}
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return nil, nil, err
	}
	return pos, log, nil
}

// wantArgs reports a usage error unless n(pos) is within [lo, hi] (hi < 0: unbounded).
func wantArgs(env Env, fs *flag.FlagSet, pos []string, lo, hi int, what string) error {
	if len(pos) < lo || (hi >= 0 && len(pos) > hi) {
		fmt.Fprintf(env.Stderr, "vigil %s: want %s, got %d argument(s) (see --help)\n", fs.Name(), what, len(pos))
		return errUsage
	}
	return nil
}

// classifierFlags are the flags of the subcommands that reach the store.
type classifierFlags struct {
	lf     logFlags
	url    string
	bucket string
	deps   string
}

func (f *classifierFlags) register(fs *flag.FlagSet, deps bool) {
	f.lf.register(fs)
	fs.StringVar(&f.url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated; the server needs JetStream")
	fs.StringVar(&f.bucket, "bucket", store.DefaultBucket, "JetStream object store bucket holding the classifiers")
	if deps {
		fs.StringVar(&f.deps, "deps", models.DefaultDepsDir(), "directory \"make setup\" filled with onnxruntime and the models")
	}
}

// openStore connects to NATS and opens the classifier store; close releases the connection.
func (f *classifierFlags) openStore(ctx context.Context, log *slog.Logger) (*store.Store, func(), error) {
	nc, err := connect(ctx, f.url, "classifiers", log)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	st, err := store.Open(ctx, js, store.Config{Bucket: f.bucket})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return st, nc.Close, nil
}

// runtime loads the verified onnxruntime library from --deps.
func (f *classifierFlags) runtime() (*onnx.Runtime, models.Manifest, error) {
	man, err := models.Load()
	if err != nil {
		return nil, models.Manifest{}, err
	}
	lib, err := man.VerifyPath(f.deps, "onnxruntime")
	if err != nil {
		return nil, models.Manifest{}, err
	}
	rt, err := onnx.NewRuntime(lib)
	if err != nil {
		return nil, models.Manifest{}, err
	}
	return rt, man, nil
}

// openRegistry opens the store and a registry on it, waiting until it has loaded what the
// store holds; close releases everything.
func (f *classifierFlags) openRegistry(ctx context.Context, log *slog.Logger) (*classify.Registry, func(), error) {
	rt, _, err := f.runtime()
	if err != nil {
		return nil, nil, err
	}
	st, closeStore, err := f.openStore(ctx, log)
	if err != nil {
		_ = rt.Close()
		return nil, nil, err
	}
	reg, err := classify.OpenRegistry(classify.RegistryConfig{Runtime: rt, Store: st, Log: log})
	if err != nil {
		closeStore()
		_ = rt.Close()
		return nil, nil, err
	}
	closeAll := func() {
		_ = reg.Close()
		closeStore()
		_ = rt.Close()
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := reg.WaitReady(wctx); err != nil {
		closeAll()
		return nil, nil, err
	}
	return reg, closeAll, nil
}

func classifiersList(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers list", "Lists the registered classifiers: name, target, labels, model size and SHA-256.")
	var f classifierFlags
	var asJSON bool
	f.register(fs, false)
	fs.BoolVar(&asJSON, "json", false, "print the entries (with their manifests) as JSON")
	if err := parse(fs, env, args); err != nil {
		return err
	}
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	st, done, err := f.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	entries, bad, err := st.List(ctx)
	if err != nil {
		return err
	}
	for _, e := range bad {
		fmt.Fprintf(env.Stderr, "vigil classifiers list: %v\n", e)
	}
	out := stdoutOr(env.Stdout)
	if asJSON {
		if entries == nil {
			entries = []store.Entry{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTARGET\tLABELS\tSIZE\tSHA256\tSTORED")
	for _, e := range entries {
		m := e.Manifest
		labels := strings.Join(m.Labels, ",")
		if len(labels) > 40 {
			labels = fmt.Sprintf("%d labels", len(m.Labels))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Target, labels, e.Size, m.SHA256[:12], e.ModTime.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func classifiersRegister(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers register", "Registers the ONNX model MODEL as the classifier described by MANIFEST (YAML or JSON):\n"+
		"the model is loaded and run once, then stored with the manifest and its SHA-256; every analyzer loads it.")
	fs.Usage = classifierUsage(fs, "classifiers register", "MANIFEST MODEL")
	var f classifierFlags
	f.register(fs, true)
	pos, log, err := f.parse(fs, env, args, 2, 2, "MANIFEST MODEL")
	if err != nil {
		return err
	}
	mb, err := readFileLimited(pos[0], manifest.MaxSize)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(mb)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	model, err := readFileLimited(pos[1], store.DefaultMaxModelBytes)
	if err != nil {
		return err
	}
	rt, _, err := f.runtime()
	if err != nil {
		return err
	}
	defer rt.Close()
	st, done, err := f.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	e, err := classify.PutChecked(ctx, rt, st, m, model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdoutOr(env.Stdout), "registered %s: %d labels, target %s, sha256 %s\n", e.Manifest.Name, len(e.Manifest.Labels), e.Manifest.Target, e.Manifest.SHA256)
	return nil
}

func classifiersDelete(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers delete", "Deletes classifiers; every analyzer unloads them.")
	fs.Usage = classifierUsage(fs, "classifiers delete", "NAME...")
	var f classifierFlags
	f.register(fs, false)
	pos, log, err := f.parse(fs, env, args, 1, -1, "NAME...")
	if err != nil {
		return err
	}
	st, done, err := f.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	var errs []error
	for _, name := range pos {
		if err := st.Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdoutOr(env.Stdout), "deleted %s\n", name)
	}
	return errors.Join(errs...)
}

func classifiersTrain(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers train", "Trains classifier NAME from DATA, a folder (or ZIP) holding one folder of JPEG/PNG images per class:\n"+
		"computes the --backbone's features of every image, fits a softmax head (held-out validation split, early stopping,\n"+
		"class weights), prints the report (accuracy, confusion matrix, k-fold cross-validation), exports backbone and head\n"+
		"as one ONNX model and registers it (unless --no-register). Progress goes to stderr.")
	fs.Usage = classifierUsage(fs, "classifiers train", "NAME DATA")
	var (
		f          classifierFlags
		backbone   string
		folds      int
		out        string
		noRegister bool
		threshold  float64
		minPer     int
		seed       uint64
	)
	f.register(fs, true)
	fs.StringVar(&backbone, "backbone", "", "backbone: an ImageNet classifier .onnx file (shorter side 256, centre crop 224, RGB, ImageNet mean/std), or \"face\" to classify faces on the face embedding (required)")
	fs.IntVar(&folds, "folds", 5, "k of the k-fold cross-validation in the report (0: none)")
	fs.StringVar(&out, "out", "", "also write NAME.onnx, NAME.manifest.json and NAME.report.json into this directory")
	fs.BoolVar(&noRegister, "no-register", false, "do not register the classifier in NATS")
	fs.Float64Var(&threshold, "threshold", 0, "the classifier's threshold: lower top scores are not reported")
	fs.IntVar(&minPer, "min-per-class", 5, "fewest images a class may have")
	fs.Uint64Var(&seed, "seed", 1, "seed of the validation split and shuffling")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if err := wantArgs(env, fs, pos, 2, 2, "NAME DATA"); err != nil {
		return err
	}
	if backbone == "" {
		fmt.Fprintf(env.Stderr, "vigil classifiers train: --backbone is required: an ImageNet .onnx file or \"face\"\n")
		return errUsage
	}
	name, data := pos[0], pos[1]
	if err := manifest.CheckName(name); err != nil {
		return err
	}
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return err
	}
	lim := dataset.Limits{MinPerClass: minPer}
	ds, cleanup, err := openDataset(data, lim)
	if err != nil {
		return err
	}
	defer cleanup()
	counts := ds.Counts()
	for i, c := range ds.Classes {
		log.Info("class", "name", c, "images", counts[i])
	}

	rt, man, err := f.runtime()
	if err != nil {
		return err
	}
	defer rt.Close()
	cfg := classify.TrainConfig{Name: name, Folds: folds, Threshold: float32(threshold), Head: train.Config{Seed: seed}}
	if backbone == "face" {
		fb, err := man.ReadVerified(f.deps, "fr_feature")
		if err != nil {
			return err
		}
		if cfg.Backbone, err = classify.FaceBackbone("fr_feature", fb); err != nil {
			return err
		}
		ms := analyze.NewModelSet(rt, man, f.deps, onnx.SessionOptions{})
		defer ms.Close()
		p, err := analyze.NewPipeline(analyze.PipelineConfig{}, ms.Get)
		if err != nil {
			return err
		}
		cfg.Faces = pipelineFaces(p)
	} else {
		b, err := readFileLimited(backbone, store.DefaultMaxModelBytes)
		if err != nil {
			return fmt.Errorf("--backbone: %w", err)
		}
		cfg.Backbone = classify.ImageNetBackbone(strings.TrimSuffix(filepath.Base(backbone), filepath.Ext(backbone)), b)
	}
	bar := &progressBar{w: env.Stderr}
	cfg.Progress = bar.update
	res, err := classify.Train(ctx, rt, ds, cfg)
	bar.finish()
	if err != nil {
		return err
	}
	printReport(stdoutOr(env.Stdout), res.Report)
	if out != "" {
		if err := writeTrained(out, res); err != nil {
			return err
		}
		fmt.Fprintf(stdoutOr(env.Stdout), "wrote %s\n", filepath.Join(out, name+".onnx"))
	}
	if noRegister {
		return nil
	}
	st, closeStore, err := f.openStore(ctx, log)
	if err != nil {
		return fmt.Errorf("%w (the classifier is trained but not registered: use --no-register --out DIR to keep it without NATS)", err)
	}
	defer closeStore()
	e, err := classify.PutChecked(ctx, rt, st, res.Manifest, res.Model)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdoutOr(env.Stdout), "registered %s (sha256 %s)\n", e.Manifest.Name, e.Manifest.SHA256)
	return nil
}

// pipelineFaces adapts the face pipeline (detection and landmarks) to classify.FaceFinder, for
// face classifiers.
func pipelineFaces(p *analyze.Pipeline) classify.FaceFinder {
	return classify.FaceFinderFunc(func(ctx context.Context, frames []gocv.Mat) ([][]result.Face, error) {
		ff, err := p.Analyze(ctx, frames)
		if err != nil {
			return nil, err
		}
		out := make([][]result.Face, len(ff))
		for i, f := range ff {
			out[i] = f.Faces
		}
		return out, nil
	})
}

// openDataset checks a dataset folder, or unpacks and checks a ZIP into a temporary folder that
// cleanup removes.
func openDataset(path string, lim dataset.Limits) (dataset.Dataset, func(), error) {
	fi, err := os.Stat(path)
	if err != nil {
		return dataset.Dataset{}, nil, fmt.Errorf("dataset: %w", err)
	}
	if fi.IsDir() {
		ds, err := dataset.Scan(path, lim)
		return ds, func() {}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return dataset.Dataset{}, nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "vigil-dataset-")
	if err != nil {
		return dataset.Dataset{}, nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	ds, err := dataset.ExtractZIP(f, fi.Size(), filepath.Join(tmp, "data"), lim)
	if err != nil {
		cleanup()
		return dataset.Dataset{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return ds, cleanup, nil
}

// writeTrained writes the model, manifest and report of a training into dir.
func writeTrained(dir string, res classify.TrainResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	name := res.Manifest.Name
	mj, err := res.Manifest.Encode()
	if err != nil {
		return err
	}
	rj, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return err
	}
	for file, data := range map[string][]byte{name + ".onnx": res.Model, name + ".manifest.json": mj, name + ".report.json": rj} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// printReport prints a training report for people.
func printReport(w io.Writer, r classify.TrainReport) {
	fmt.Fprintf(w, "backbone %s, features %s (%d values), %d images", r.Backbone, r.Features, r.FeatureDim, r.Images)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, ", %d skipped", len(r.Skipped))
	}
	fmt.Fprintf(w, "\nvalidation accuracy %.1f%% on %d held-out images (trained on %d; best epoch %d of %d)\n",
		100*r.ValAccuracy, r.ValSize, r.TrainSize, r.BestEpoch, r.Epochs)
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", s.Path, s.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "class\tprecision\trecall\tf1\tsupport")
	for _, c := range r.PerClass {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%d\n", c.Label, c.Precision, c.Recall, c.F1, c.Support)
	}
	_ = tw.Flush()
	printConfusion(w, "validation confusion (rows: true class, columns: predicted)", r.Labels, r.Confusion)
	if cv := r.CrossValidation; cv != nil {
		fmt.Fprintf(w, "%d-fold cross-validation accuracy %.1f%% ± %.1f%% (folds:", cv.Folds, 100*cv.Mean, 100*cv.Std)
		for _, a := range cv.Accuracy {
			fmt.Fprintf(w, " %.1f%%", 100*a)
		}
		fmt.Fprintln(w, ")")
		printConfusion(w, "cross-validation confusion", r.Labels, cv.Confusion)
	}
	if len(r.L2Grid) > 0 {
		fmt.Fprintf(w, "weight decay %g, chosen by cross-validation (", r.L2)
		for i, g := range r.L2Grid {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "%g: %.1f%%", g.L2, 100*g.Mean)
		}
		fmt.Fprintln(w, ")")
	}
	if r.RetrainedOnAll {
		fmt.Fprintf(w, "exported head refitted on all %d images (%d augmented copies for training: mirror, centre crop)\n", r.Images, r.Augmented)
	}
}

func printConfusion(w io.Writer, title string, labels []string, conf [][]int) {
	fmt.Fprintln(w, title+":")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, l := range labels {
		fmt.Fprintf(tw, "%s\t", l)
	}
	fmt.Fprintln(tw)
	for i, row := range conf {
		fmt.Fprintf(tw, "%s\t", labels[i])
		for _, n := range row {
			fmt.Fprintf(tw, "%d\t", n)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
}

// progressBar draws training progress on one terminal line, redrawn only when it changes.
type progressBar struct {
	w     io.Writer
	phase string
	last  string
	drawn bool
}

var phaseNames = map[string]string{"embed": "features", "train": "training", "crossval": "cross-validation", "export": "export"}

func (b *progressBar) update(p classify.TrainProgress) {
	if p.Phase != b.phase && b.drawn {
		fmt.Fprintln(b.w)
	}
	b.phase = p.Phase
	const width = 30
	filled := 0
	if p.Total > 0 {
		filled = min(width, width*p.Done/p.Total)
	}
	line := fmt.Sprintf("\r%-16s [%s%s] %d/%d", phaseNames[p.Phase], strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total)
	if p.Phase == "train" {
		line = fmt.Sprintf("\r%-16s epoch %d (at most %d)", phaseNames[p.Phase], p.Done, p.Total)
	}
	if line == b.last {
		return
	}
	b.last, b.drawn = line, true
	fmt.Fprint(b.w, line)
}

func (b *progressBar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func classifiersClassify(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("classifiers classify", "Loads the registered classifiers and runs them on each image (JPEG or PNG); prints one JSON line\n"+
		"per image with every prediction and score (the answer of POST /v1/classify). Face classifiers run on each face found.")
	fs.Usage = classifierUsage(fs, "classifiers classify", "IMAGE...")
	var (
		f     classifierFlags
		model stringList
	)
	f.register(fs, true)
	fs.Var(&model, "model", "classifier to run (repeatable or comma-separated; default all)")
	pos, log, err := f.parse(fs, env, args, 1, -1, "IMAGE...")
	if err != nil {
		return err
	}
	reg, done, err := f.openRegistry(ctx, log)
	if err != nil {
		return err
	}
	defer done()
	svc := &classify.Service{Registry: reg}
	if needsFaces(reg, model) {
		man, err := models.Load()
		if err != nil {
			return err
		}
		ms := analyze.NewModelSet(reg.Runtime(), man, f.deps, onnx.SessionOptions{})
		defer ms.Close()
		p, err := analyze.NewPipeline(analyze.PipelineConfig{}, ms.Get)
		if err != nil {
			return err
		}
		svc.Faces = pipelineFaces(p)
	}
	enc := json.NewEncoder(stdoutOr(env.Stdout))
	var errs []error
	for _, path := range pos {
		img, err := readFileLimited(path, 64<<20)
		if err == nil {
			var res any
			res, err = svc.Classify(ctx, img, model)
			if err == nil {
				err = enc.Encode(map[string]any{"image": path, "result": res})
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// needsFaces reports whether a face classifier will run.
func needsFaces(reg *classify.Registry, only []string) bool {
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	var faces []string
	for _, c := range reg.Classifiers() {
		m := c.Manifest()
		if m.Target == manifest.TargetFace && (len(only) == 0 || want[m.Name]) {
			faces = append(faces, m.Name)
		}
	}
	sort.Strings(faces)
	return len(faces) > 0
}

// classifierUsage is a usage function naming positional arguments.
func classifierUsage(fs *flag.FlagSet, name, positional string) func() {
	base := fs.Usage
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "Arguments: vigil %s [flags] %s\n", name, positional)
		base()
	}
}

// readFileLimited reads a file of at most limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
