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
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/faceengine"
	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// The image commands mirror the HTTP API on local files and print the same JSON: vigil detect,
// analyze, represent IMAGE... (one JSON line per image), vigil verify A B, and vigil faces
// add|list|show|rm, which work on the gallery in NATS.

// parseArgs is parse for commands with positional arguments: flags may come before, between or
// after them ("--" ends the flags). It returns the positional arguments.
func parseArgs(fs *flag.FlagSet, env Env, args []string) ([]string, error) {
	if err := parse(fs, env, nil); err != nil { // the VIGIL_* environment
		return nil, err
	}
	var pos, after []string
	for i, a := range args {
		if a == "--" {
			args, after = args[:i], args[i+1:]
			break
		}
	}
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	return append(pos, after...), nil
}

// imageFlags load the models and hold the face API used without a server.
type imageFlags struct {
	lf logFlags
	mf modelFlags
}

func (f *imageFlags) register(fs *flag.FlagSet) {
	f.lf.register(fs)
	f.mf.register(fs)
}

// open loads the models and returns the API to call and a function releasing the models.
func (f *imageFlags) open(env Env, threshold float64) (*faceapi.API, *slog.Logger, func(), error) {
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	an, err := f.mf.load(log)
	if err != nil {
		return nil, nil, nil, err
	}
	eng, err := faceengine.New(faceengine.Config{Models: an.models.Get, Pipeline: f.mf.pipelineConfig()})
	if err != nil {
		an.Close()
		return nil, nil, nil, err
	}
	api, err := faceapi.New(faceapi.Config{Engine: eng, Threshold: float32(threshold), Log: log})
	if err != nil {
		an.Close()
		return nil, nil, nil, err
	}
	return api, log, an.Close, nil
}

// readImage reads a file, or standard input for "-".
func readImage(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// imageResult is one line of vigil detect|analyze|represent: the image and the API's answer, or
// its error.
type imageResult struct {
	Image string `json:"image"`
	*faceapi.FacesResponse
	Error *httpapi.Error `json:"error,omitempty"`
}

// errorBody turns an error into the API's error body (code "internal" when it is not an API
// error).
func errorBody(err error) *httpapi.Error {
	var e *faceapi.Error
	if errors.As(err, &e) {
		return &httpapi.Error{Code: e.Code, Message: e.Message}
	}
	return &httpapi.Error{Code: "error", Message: err.Error()}
}

func detectCmd(ctx context.Context, env Env, args []string) error {
	return imageCmd(ctx, env, "detect", args)
}

func representCmd(ctx context.Context, env Env, args []string) error {
	return imageCmd(ctx, env, "represent", args)
}

// analyzeOrImagesCmd is `vigil analyze`: with image arguments the image command (like POST
// /v1/analyze), without them the analyze role (analyzeCmd).
func analyzeOrImagesCmd(ctx context.Context, env Env, args []string) error {
	if hasPositional(args) {
		return imageCmd(ctx, env, "analyze", args)
	}
	return analyzeCmd(ctx, env, args)
}

// hasPositional reports whether args hold a non-flag argument, parsed against the union of the
// analyze role's and the image command's flags.
func hasPositional(args []string) bool {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		lf  logFlags
		af  analyzeFlags
		url string
	)
	lf.register(fs)
	af.register(fs)
	fs.StringVar(&url, "nats-url", "", "")
	if err := fs.Parse(args); err != nil {
		return false // the role reports it
	}
	return fs.NArg() > 0
}

func imageCmd(ctx context.Context, env Env, name string, args []string) error {
	summary := map[string]string{
		"detect":    "Detects the faces in each image and prints one JSON line per image: box, score and 5 landmarks per face\n(the answer of POST /v1/detect).",
		"analyze":   "Detects the faces in each image and estimates their attributes (--heads); prints one JSON line per image\n(the answer of POST /v1/analyze).",
		"represent": "Prints each image's faces with their L2-normalised 512-d embeddings, one JSON line per image\n(the answer of POST /v1/represent).",
	}[name]
	fs := newFlagSet(name, summary+" IMAGE may be - for standard input; JPEG or PNG.")
	fs.Usage = usageWithArgs(fs, name, "IMAGE...")
	var (
		f     imageFlags
		heads string
	)
	f.register(fs)
	if name == "analyze" {
		fs.StringVar(&heads, "heads", "default", "heads to run: comma-separated from "+strings.Join(faceapi.AttributeHeads(), ", ")+
			"; or all, default ("+strings.Join(faceapi.DefaultHeads(), ",")+"), none")
	}
	images, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(images) == 0 {
		fmt.Fprintf(env.Stderr, "vigil %s: no image given (vigil %s [flags] IMAGE...)\n", name, name)
		return errUsage
	}
	api, _, closeModels, err := f.open(env, gallery.DefaultThreshold)
	if err != nil {
		return err
	}
	defer closeModels()
	opts := faceapi.Options{Embeddings: name == "represent"}
	if name == "analyze" {
		if opts.Heads, err = api.ParseHeads(heads); err != nil {
			return fmt.Errorf("--heads: %w", err)
		}
	}
	enc := json.NewEncoder(stdoutOr(env.Stdout))
	failed := 0
	for _, path := range images {
		line := imageResult{Image: path}
		data, err := readImage(path)
		if err == nil {
			var out faceapi.FacesResponse
			if out, err = api.Faces(ctx, data, opts); err == nil {
				line.FacesResponse = &out
			}
		}
		if err != nil {
			failed++
			line.Error = errorBody(err)
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed (see their \"error\" in the output)", failed, len(images))
	}
	return nil
}

// usageWithArgs is a flag set's usage with positional arguments after the flags.
func usageWithArgs(fs *flag.FlagSet, name, positional string) func() {
	inner := fs.Usage
	return func() {
		var b strings.Builder
		out := fs.Output()
		fs.SetOutput(&b)
		inner()
		fs.SetOutput(out)
		fmt.Fprint(out, strings.Replace(b.String(), "vigil "+name+" [flags]", "vigil "+name+" [flags] "+positional, 1))
	}
}

// verifyResult is the output of vigil verify.
type verifyResult struct {
	Image1 string `json:"image1"`
	Image2 string `json:"image2"`
	faceapi.VerifyResponse
}

func verifyCmd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("verify", "Compares the largest face of IMAGE1 with the largest face of IMAGE2 and prints whether they are the same\n"+
		"person, with their cosine similarity and the threshold (the answer of POST /v1/verify).")
	fs.Usage = usageWithArgs(fs, "verify", "IMAGE1 IMAGE2")
	var (
		f         imageFlags
		threshold float64
	)
	f.register(fs)
	fs.Float64Var(&threshold, "match-threshold", gallery.DefaultThreshold, "cosine similarity from which two faces are the same person")
	images, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(images) != 2 {
		fmt.Fprintf(env.Stderr, "vigil verify: want two images, got %d (vigil verify [flags] IMAGE1 IMAGE2)\n", len(images))
		return errUsage
	}
	if threshold < -1 || threshold > 1 {
		return fmt.Errorf("--match-threshold %v: must be within -1..1", threshold)
	}
	var data [2][]byte
	for i, p := range images {
		if data[i], err = readImage(p); err != nil {
			return err
		}
	}
	api, _, closeModels, err := f.open(env, threshold)
	if err != nil {
		return err
	}
	defer closeModels()
	out, err := api.Verify(ctx, data[0], data[1], float32(threshold))
	if err != nil {
		e := errorBody(err)
		return errors.New(e.Code + ": " + e.Message)
	}
	return printJSON(env, verifyResult{Image1: images[0], Image2: images[1], VerifyResponse: out})
}

func printJSON(env Env, v any) error {
	enc := json.NewEncoder(stdoutOr(env.Stdout))
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func facesCmd(ctx context.Context, env Env, args []string) error {
	sub := map[string]func(context.Context, Env, []string) error{
		"add": facesAdd, "list": facesList, "ls": facesList, "show": facesShow, "rm": facesRm, "delete": facesRm,
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, facesUsage)
		return nil
	}
	run, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "vigil faces: unknown subcommand %q\n%s", args[0], facesUsage)
		return errUsage
	}
	return run(ctx, env, args[1:])
}

const facesUsage = `Usage: vigil faces SUBCOMMAND [flags] ...

Manages the face gallery in the NATS JetStream KV bucket every analyzer and the face API watch;
a change takes effect everywhere within a second, without a restart.

  add NAME PHOTO...   enroll NAME (created if new) from photos showing exactly one face each;
                      nothing is written unless every photo is accepted (--skip-bad: skip bad ones)
  list                list the identities
  show NAME           one identity and its photos
  rm NAME...          delete identities and their embeddings

vigil faces SUBCOMMAND --help lists its flags (--nats-url, --gallery-bucket, ...).
`

// galleryCmdFlags are the flags of every faces subcommand.
type galleryCmdFlags struct {
	lf  logFlags
	gf  galleryFlags
	url string
}

func (f *galleryCmdFlags) register(fs *flag.FlagSet) {
	f.lf.register(fs)
	fs.StringVar(&f.gf.bucket, "gallery-bucket", gallery.DefaultBucket, "JetStream KV bucket holding the face gallery")
	fs.StringVar(&f.url, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated; the server needs JetStream")
}

// open connects to NATS and opens the gallery store.
func (f *galleryCmdFlags) open(ctx context.Context, env Env, role string) (*gallery.Store, *nats.Conn, *slog.Logger, error) {
	log, err := f.lf.logger(env.Stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	f.gf.threshold = gallery.DefaultThreshold
	nc, err := connect(ctx, f.url, role, log)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := f.gf.openStore(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return store, nc, log, nil
}

func facesAdd(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("faces add", "Enrolls NAME from photos (JPEG or PNG) showing exactly one face each: creates the identity, or adds to it.\n"+
		"Every photo is analysed first (progress on stderr); nothing is written unless all are accepted, unless --skip-bad.\n"+
		"Prints the identity as stored.")
	fs.Usage = usageWithArgs(fs, "faces add", "NAME PHOTO...")
	var (
		gcf     galleryCmdFlags
		mf      modelFlags
		skipBad bool
	)
	gcf.register(fs)
	mf.register(fs)
	fs.BoolVar(&skipBad, "skip-bad", false, "skip photos that do not show exactly one face (reported on stderr) instead of enrolling nothing")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		fmt.Fprintln(env.Stderr, "vigil faces add: want a name and at least one photo (vigil faces add [flags] NAME PHOTO...)")
		return errUsage
	}
	name, paths := pos[0], pos[1:]
	id, err := gallery.IDFor(name)
	if err != nil {
		return err
	}
	store, nc, log, err := gcf.open(ctx, env, "faces")
	if err != nil {
		return err
	}
	defer nc.Close()
	an, err := mf.load(log)
	if err != nil {
		return err
	}
	defer an.Close()
	eng, err := faceengine.New(faceengine.Config{Models: an.models.Get, Pipeline: mf.pipelineConfig()})
	if err != nil {
		return err
	}
	api, err := faceapi.New(faceapi.Config{Engine: eng, Log: log})
	if err != nil {
		return err
	}

	bar := newProgress(env.Stderr, "enrolling "+name, len(paths))
	var photos []gallery.NewPhoto
	skipped := 0
	for i, path := range paths {
		bar.update(i, path)
		what := fmt.Sprintf("photo %d of %d (%s)", i+1, len(paths), path)
		data, err := readImage(path)
		var p gallery.NewPhoto
		if err == nil {
			p, err = api.EnrollmentPhoto(ctx, what, data)
		} else {
			err = fmt.Errorf("%s: %w", what, err)
		}
		if err != nil {
			msg := err.Error()
			if e := errorBody(err); e.Code != "error" {
				msg = e.Code + ": " + e.Message
			}
			if !skipBad {
				bar.done()
				return fmt.Errorf("%s (nothing was enrolled; --skip-bad enrolls the other photos)", strings.TrimSuffix(msg, " Nothing was enrolled."))
			}
			bar.note("skipped " + strings.TrimSuffix(msg, " Nothing was enrolled."))
			skipped++
			continue
		}
		photos = append(photos, p)
		if ctx.Err() != nil {
			bar.done()
			return ctx.Err()
		}
	}
	bar.update(len(paths), "")
	bar.done()
	if len(photos) == 0 {
		return fmt.Errorf("none of the %d photos shows exactly one face: nothing enrolled", len(paths))
	}
	var out faceapi.EnrollResponse
	_, err = store.Get(ctx, id)
	switch {
	case errors.Is(err, gallery.ErrNotFound):
		ident, cerr := store.Create(ctx, name, photos)
		if errors.Is(cerr, gallery.ErrExists) { // created meanwhile: add to it
			ident, added, aerr := store.AddPhotos(ctx, id, photos)
			out, err = faceapi.EnrollResponse{Identity: ident, Added: ids(added)}, aerr
			break
		}
		out, err = faceapi.EnrollResponse{Identity: ident, Added: ids(ident.Photos)}, cerr
	case err == nil:
		ident, added, aerr := store.AddPhotos(ctx, id, photos)
		out, err = faceapi.EnrollResponse{Identity: ident, Added: ids(added)}, aerr
	}
	if err != nil {
		return faceapi.GalleryError(err)
	}
	log.Info("enrolled", "identity", out.Identity.ID, "added", len(out.Added), "skipped", skipped, "photos", len(out.Identity.Photos))
	return printJSON(env, out)
}

func ids(ps []gallery.Photo) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func facesList(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("faces list", "Lists the identities in the gallery as JSON (as GET /v1/identities).")
	var gcf galleryCmdFlags
	gcf.register(fs)
	if err := parse(fs, env, args); err != nil {
		return err
	}
	store, nc, log, err := gcf.open(ctx, env, "faces")
	if err != nil {
		return err
	}
	defer nc.Close()
	list, err := store.List(ctx)
	if err != nil {
		if len(list) == 0 && !errors.Is(err, gallery.ErrRecord) {
			return err
		}
		log.Warn("skipped records that do not decode", "err", err)
	}
	out := faceapi.IdentityList{Identities: make([]faceapi.IdentitySummary, len(list)), Skipped: gallery.SkippedRecords(err)}
	for i, id := range list {
		out.Identities[i] = faceapi.IdentitySummary{ID: id.ID, Name: id.Name, Photos: len(id.Photos), CreatedAt: id.CreatedAt, UpdatedAt: id.UpdatedAt}
	}
	return printJSON(env, out)
}

func facesShow(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("faces show", "Prints one identity and its photos as JSON (as GET /v1/identities/{id}); NAME may be the name or the id.")
	fs.Usage = usageWithArgs(fs, "faces show", "NAME")
	var gcf galleryCmdFlags
	gcf.register(fs)
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprintln(env.Stderr, "vigil faces show: want one name")
		return errUsage
	}
	id, err := gallery.IDFor(pos[0])
	if err != nil {
		return err
	}
	store, nc, _, err := gcf.open(ctx, env, "faces")
	if err != nil {
		return err
	}
	defer nc.Close()
	ident, err := store.Get(ctx, id)
	if err != nil {
		return err
	}
	return printJSON(env, ident)
}

func facesRm(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("faces rm", "Deletes identities and every stored revision of their embeddings; NAME may be the name or the id.")
	fs.Usage = usageWithArgs(fs, "faces rm", "NAME...")
	var gcf galleryCmdFlags
	gcf.register(fs)
	names, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintln(env.Stderr, "vigil faces rm: want at least one name")
		return errUsage
	}
	store, nc, log, err := gcf.open(ctx, env, "faces")
	if err != nil {
		return err
	}
	defer nc.Close()
	out := struct {
		Deleted []string `json:"deleted"`
	}{Deleted: []string{}}
	var errs []error
	for _, name := range names {
		id, err := gallery.IDFor(name)
		if err == nil {
			err = store.Delete(ctx, id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		log.Info("deleted", "identity", id)
		out.Deleted = append(out.Deleted, id)
	}
	if err := printJSON(env, out); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// progress draws a progress bar on a terminal, or prints a line at every tenth of the way
// elsewhere (logs, CI).
type progress struct {
	w           io.Writer
	label       string
	total, last int
	tty, drawn  bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, label: label, total: total, tty: tty, last: -1}
}

// update shows done of total finished, current being worked on.
func (p *progress) update(done int, current string) {
	if p.total < 2 {
		return
	}
	if p.tty {
		const width = 30
		n := width * done / p.total
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %-40.40s", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), done, p.total, current)
		p.drawn = true
		return
	}
	if step := 10 * done / p.total; step != p.last && (step > p.last || done == p.total) {
		p.last = step
		fmt.Fprintf(p.w, "%s: %d/%d photos analysed\n", p.label, done, p.total)
	}
}

// note prints a message without breaking the bar.
func (p *progress) note(msg string) {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, msg)
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
