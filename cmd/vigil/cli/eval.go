package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/vigil-video/vigil/analyze/eval"
	"github.com/vigil-video/vigil/analyze/faceapi"
	"github.com/vigil-video/vigil/analyze/faceengine"
	"github.com/vigil-video/vigil/analyze/gallery"
)

// vigil eval measures the face models on labelled local photos: eval faces (verification
// metrics over every pair of photos, analyze/eval) and eval detect (face counts against
// expected ranges). Both load the models like the image commands and need no NATS.

const evalUsage = `Usage: vigil eval SUBCOMMAND [flags] DIR

Measures the face models on labelled photos, locally (no NATS needed):

  faces DIR    DIR holds one folder of JPEG/PNG photos per identity (the folder name is the
               identity). Each photo's largest face is embedded and every pair of photos is
               compared: verification accuracy at the best threshold, ROC AUC, TAR at FAR 1e-2
               and 1e-3, the least similar same-person and most similar different-person pairs,
               the result at --match-threshold, and the photos where no face was found.
  detect DIR   counts the faces in every JPEG/PNG image under DIR. With --expect FILE (lines
               "NAME: N" or "NAME: MIN-MAX", NAME relative to DIR) it checks each count and
               exits 1 when one is outside its range or an expected image is missing; faces
               found on images expected to hold none are reported as false faces.
  attributes DIR --labels FILE
               scores gender, expression (smile vs neutral) and age of each photo's largest
               face against a CSV of labels (columns file, gender, expression, age).

Each prints a table, or JSON with --json. vigil eval SUBCOMMAND --help lists the flags.
`

// evalCmd dispatches the eval subcommands.
func evalCmd(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdoutOr(env.Stdout), evalUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub := map[string]func(context.Context, Env, []string) error{"faces": evalFaces, "detect": evalDetect, "attributes": evalAttributes}
	run, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "vigil eval: unknown subcommand %q\n%s", args[0], evalUsage)
		return errUsage
	}
	return run(ctx, env, args[1:])
}

// isImageFile reports whether name has a JPEG or PNG extension (what vigil eval reads).
func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// openEngine loads the models the image flags name and returns a face engine whose pipelines
// include the embedding when embedding is set; release closes the models.
func (f *imageFlags) openEngine(env Env, embedding bool) (eng *faceengine.Engine, log *slog.Logger, release func(), err error) {
	if log, err = f.lf.logger(env.Stderr); err != nil {
		return nil, nil, nil, err
	}
	an, err := f.mf.load(log)
	if err != nil {
		return nil, nil, nil, err
	}
	if eng, err = faceengine.New(faceengine.Config{Models: an.models.Get, Pipeline: f.mf.pipelineConfig()}); err == nil && embedding {
		err = eng.Preload(nil, true)
	}
	if err != nil {
		an.Close()
		return nil, nil, nil, err
	}
	return eng, log, an.Close, nil
}

// evalDir parses an eval subcommand's arguments: flags and exactly one DIR, an existing folder.
func evalDir(fs *flag.FlagSet, env Env, args []string) (string, error) {
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fmt.Fprintf(env.Stderr, "vigil %s: want one DIR, got %d argument(s) (see --help)\n", fs.Name(), len(pos))
		return "", errUsage
	}
	st, err := os.Stat(pos[0])
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a folder", pos[0])
	}
	return pos[0], nil
}

// photoError is a photo that could not be analysed.
type photoError struct {
	Photo string `json:"photo"`
	Error string `json:"error"`
}

// facesEval is the output of vigil eval faces: what was found in the photos, and the
// verification report over the photos that gave an embedding.
type facesEval struct {
	Dir string `json:"dir"`
	// Photos is the number of photos found; Verification.Samples those embedded.
	Photos int `json:"photos"`
	// NoFace lists the photos where no face (or no face that could be aligned) was found;
	// MultipleFaces those with more than one face (the largest was used). Paths are relative
	// to Dir.
	NoFace        []string     `json:"no_face"`
	MultipleFaces []string     `json:"multiple_faces"`
	Failed        []photoError `json:"failed,omitempty"`
	eval.Verification
}

func evalFaces(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("eval faces", "Measures face verification on DIR, one folder of JPEG/PNG photos per identity: each photo's largest\n"+
		"face is embedded and every pair compared (accuracy at the best threshold, ROC AUC, TAR at FAR 1e-2 and\n"+
		"1e-3, the closest calls, the result at --match-threshold, photos without a face).")
	fs.Usage = usageWithArgs(fs, "eval faces", "DIR")
	var (
		f         imageFlags
		asJSON    bool
		threshold float64
	)
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.Float64Var(&threshold, "match-threshold", gallery.DefaultThreshold, "threshold to report the accuracy, TAR and FAR at (the one verification and the gallery use)")
	dir, err := evalDir(fs, env, args)
	if err != nil {
		return err
	}
	if threshold < -1 || threshold > 1 {
		return fmt.Errorf("--match-threshold %v: must be within -1..1", threshold)
	}
	photos, identities, err := identityPhotos(dir)
	if err != nil {
		return err
	}
	eng, log, release, err := f.openEngine(env, true)
	if err != nil {
		return err
	}
	defer release()
	out := facesEval{Dir: dir, Photos: len(photos), NoFace: []string{}, MultipleFaces: []string{}}
	var samples []eval.Sample
	for _, p := range photos {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p.name)))
		var res faceapi.Analysis
		if err == nil {
			res, err = eng.Analyze(ctx, data, faceapi.Options{Embeddings: true})
		}
		switch {
		case err != nil:
			out.Failed = append(out.Failed, photoError{Photo: p.name, Error: err.Error()})
			continue
		case len(res.Faces) == 0 || res.Embeddings[0] == nil:
			out.NoFace = append(out.NoFace, p.name)
			continue
		case len(res.Faces) > 1:
			out.MultipleFaces = append(out.MultipleFaces, p.name)
		}
		log.Debug("photo embedded", "photo", p.name, "faces", len(res.Faces))
		samples = append(samples, eval.Sample{Identity: p.identity, Name: p.name, Embedding: res.Embeddings[0]})
	}
	log.Info("photos embedded", "dir", dir, "identities", identities, "photos", len(photos), "embedded", len(samples),
		"no_face", len(out.NoFace), "failed", len(out.Failed))
	if out.Verification, err = eval.Verify(samples, eval.DefaultFARs(), threshold); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if asJSON {
		err = printJSON(env, out)
	} else {
		err = printFacesTable(stdoutOr(env.Stdout), out)
	}
	if err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("%d of %d photos could not be analysed (see \"failed\" in the output)", len(out.Failed), len(photos))
	}
	return nil
}

// identityPhoto is one photo of vigil eval faces: its identity and its slash-separated path
// relative to DIR.
type identityPhoto struct{ identity, name string }

// identityPhotos lists the JPEG/PNG photos in DIR's folders (one level: DIR/IDENTITY/PHOTO),
// sorted, and the number of identities with a photo. Hidden entries are skipped.
func identityPhotos(dir string) ([]identityPhoto, int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var out []identityPhoto
	ids := 0
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, 0, err
		}
		n := len(out)
		for _, f := range files {
			if f.Type().IsRegular() && isImageFile(f.Name()) && !strings.HasPrefix(f.Name(), ".") {
				out = append(out, identityPhoto{identity: e.Name(), name: e.Name() + "/" + f.Name()})
			}
		}
		if len(out) > n {
			ids++
		}
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("no JPEG or PNG photos in %s/IDENTITY/ (vigil eval faces wants one folder of photos per identity)", dir)
	}
	return out, ids, nil
}

// farLabel writes a FAR as 1e-2, 1e-3.
func farLabel(far float64) string {
	s := fmt.Sprintf("%.0e", far)
	return strings.NewReplacer("e-0", "e-", "e+0", "e").Replace(s)
}

func printFacesTable(w io.Writer, r facesEval) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := r.Verification
	fmt.Fprintf(tw, "photos\t%d in %d identities; %d embedded, %d without a face, %d with several faces (largest used), %d failed\n",
		r.Photos, v.Identities, v.Samples, len(r.NoFace), len(r.MultipleFaces), len(r.Failed))
	fmt.Fprintf(tw, "pairs\t%d: %d same-person, %d different-person\n", v.Pairs, v.Same, v.Different)
	fmt.Fprintf(tw, "accuracy\t%.4f at the best threshold %.3f\n", v.Accuracy, v.BestThreshold)
	fmt.Fprintf(tw, "ROC AUC\t%.4f\n", v.AUC)
	for _, t := range v.TARs {
		fmt.Fprintf(tw, "TAR@FAR=%s\t%.4f at threshold %.3f (%d false accepts allowed, %d made)\n",
			farLabel(t.FAR), t.TAR, t.Threshold, t.AllowedFalseAccepts, t.FalseAccepts)
		if t.Note != "" {
			fmt.Fprintf(tw, "\t  note: %s\n", t.Note)
		}
	}
	fmt.Fprintf(tw, "lowest same-person\t%.3f  %s / %s\n", v.LowestSame.Similarity, v.LowestSame.A, v.LowestSame.B)
	fmt.Fprintf(tw, "highest different-person\t%.3f  %s / %s\n", v.HighestDifferent.Similarity, v.HighestDifferent.A, v.HighestDifferent.B)
	at := v.AtThreshold
	fmt.Fprintf(tw, "at threshold %.3f\taccuracy %.4f, TAR %.4f, FAR %.4f (%d false rejects, %d false accepts)\n",
		at.Threshold, at.Accuracy, at.TAR, at.FAR, at.FalseRejects, at.FalseAccepts)
	fmt.Fprintf(tw, "no face\t%s\n", listOrNone(r.NoFace))
	if len(r.MultipleFaces) > 0 {
		fmt.Fprintf(tw, "several faces\t%s\n", strings.Join(r.MultipleFaces, ", "))
	}
	for _, f := range r.Failed {
		fmt.Fprintf(tw, "failed\t%s: %s\n", f.Photo, strings.Join(strings.Fields(f.Error), " "))
	}
	return tw.Flush()
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// detectEval is the output of vigil eval detect.
type detectEval struct {
	Dir    string `json:"dir"`
	Expect string `json:"expect,omitempty"`
	eval.DetectionReport
}

func evalDetect(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("eval detect", "Counts the faces in every JPEG/PNG image under DIR. With --expect FILE, a YAML-like file of lines\n"+
		"\"NAME: N\" or \"NAME: MIN-MAX\" (NAME relative to DIR, # comments), checks each count and exits 1 when one\n"+
		"is outside its range, an expected image is missing or an image cannot be read.")
	fs.Usage = usageWithArgs(fs, "eval detect", "DIR")
	var (
		f      imageFlags
		asJSON bool
		expect string
	)
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&expect, "expect", "", "file of expected face counts, \"NAME: N\" or \"NAME: MIN-MAX\" a line (none: just print the counts)")
	dir, err := evalDir(fs, env, args)
	if err != nil {
		return err
	}
	var want map[string]eval.Range
	if expect != "" {
		fh, err := os.Open(expect)
		if err != nil {
			return fmt.Errorf("--expect: %w", err)
		}
		want, err = eval.ParseExpectations(fh)
		fh.Close()
		if err != nil {
			return fmt.Errorf("--expect %s: %w", expect, err)
		}
	}
	images, err := imagesUnder(dir)
	if err != nil {
		return err
	}
	if len(images) == 0 && len(want) == 0 {
		return fmt.Errorf("no JPEG or PNG images under %s", dir)
	}
	eng, log, release, err := f.openEngine(env, false)
	if err != nil {
		return err
	}
	defer release()
	var counts []eval.Count
	for _, name := range images {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := eval.Count{Image: name}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		var res faceapi.Analysis
		if err == nil {
			res, err = eng.Analyze(ctx, data, faceapi.Options{})
		}
		c.Faces, c.Err = len(res.Faces), err
		log.Debug("faces counted", "image", name, "faces", c.Faces, "error", err)
		counts = append(counts, c)
	}
	rep := detectEval{Dir: dir, Expect: expect, DetectionReport: eval.Detection(counts, want)}
	if asJSON {
		err = printJSON(env, rep)
	} else {
		err = printDetectTable(stdoutOr(env.Stdout), rep.DetectionReport)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%d of %d images failed their check (outside the expected range, missing or unreadable; see the output)", rep.Failed, len(rep.Images))
	}
	return nil
}

// imagesUnder lists the JPEG/PNG files under dir, recursively, as slash-separated paths
// relative to dir, sorted. Hidden files and folders are skipped.
func imagesUnder(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		hidden := path != dir && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden {
				return filepath.SkipDir
			}
			return nil
		}
		if hidden || !d.Type().IsRegular() || !isImageFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return out, nil
}

func printDetectTable(w io.Writer, r eval.DetectionReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tFACES\tEXPECTED\tSTATUS")
	for _, row := range r.Images {
		faces, expected, status := fmt.Sprint(row.Faces), "-", string(row.Status)
		if row.Expected != nil {
			expected = row.Expected.String()
		}
		if row.Status == eval.StatusMissing || row.Status == eval.StatusError {
			faces = "-"
		}
		if row.Error != "" {
			status += ": " + strings.Join(strings.Fields(row.Error), " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Image, faces, expected, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Negatives > 0 {
		fmt.Fprintf(w, "false faces: %d on %d images expected to hold none\n", r.FalseFaces, r.Negatives)
	}
	switch {
	case r.Checked == 0 && r.Failed == 0:
		_, err := fmt.Fprintf(w, "%d images, none checked (no --expect)\n", len(r.Images))
		return err
	case r.Failed == 0:
		_, err := fmt.Fprintf(w, "%d images, %d checked: every count within its expected range\n", len(r.Images), r.Checked)
		return err
	}
	_, err := fmt.Fprintf(w, "%d images, %d checked: %d FAILED\n", len(r.Images), r.Checked, r.Failed)
	return err
}
