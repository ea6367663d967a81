package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/vigil-video/vigil/analyze"
	"github.com/vigil-video/vigil/analyze/eval"
	"github.com/vigil-video/vigil/analyze/faceapi"
)

// attributesEval is the output of vigil eval attributes.
type attributesEval struct {
	Dir    string `json:"dir"`
	Labels string `json:"labels"`
	eval.AttributesReport
}

// evalAttributes runs the age, gender and emotion heads on every labelled photo under DIR and
// scores the largest face's attributes against the labels CSV.
func evalAttributes(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("eval attributes", "Measures the gender, expression and age heads on the labelled photos in DIR: --labels FILE is a CSV\n"+
		"with a header naming a file column (relative to DIR) and gender (female/male), expression (smile, neutral,\n"+
		"other, unlabelled) and/or age (years) columns. The largest face of each photo is scored: gender accuracy,\n"+
		"smile-vs-neutral accuracy (a smile is right when shown as happy), happy recall, age MAE. Exits 1 when a\n"+
		"labelled photo is missing or cannot be read.")
	fs.Usage = usageWithArgs(fs, "eval attributes", "DIR")
	var (
		f      imageFlags
		asJSON bool
		labels string
	)
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&labels, "labels", "", "CSV of labels (required): file plus gender, expression and/or age columns")
	dir, err := evalDir(fs, env, args)
	if err != nil {
		return err
	}
	if labels == "" {
		fmt.Fprintf(env.Stderr, "vigil eval attributes: --labels FILE is required (see --help)\n")
		return errUsage
	}
	fh, err := os.Open(labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	want, err := eval.ParseLabels(fh)
	fh.Close()
	if err != nil {
		return fmt.Errorf("--labels %s: %w", labels, err)
	}
	eng, log, release, err := f.openEngine(env, false)
	if err != nil {
		return err
	}
	defer release()
	heads := []string{analyze.HeadAge, analyze.HeadGender, analyze.HeadEmotion}
	var preds []eval.AttributePrediction
	for name := range want {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := eval.AttributePrediction{Image: name, Age: -1}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if os.IsNotExist(err) {
			continue // reported as missing
		}
		var res faceapi.Analysis
		if err == nil {
			res, err = eng.Analyze(ctx, data, faceapi.Options{Heads: heads})
		}
		p.Err, p.Faces = err, len(res.Faces)
		if err == nil && len(res.Faces) > 0 {
			face := res.Faces[0] // largest first
			if face.Gender != nil {
				p.Gender, p.GenderScore = face.Gender.Label, float64(face.Gender.Score)
			}
			if face.Emotion != nil {
				p.Emotion = face.Emotion.Label
			}
			if face.Age != nil {
				p.Age = float64(*face.Age)
			}
		}
		log.Debug("photo analysed", "photo", name, "faces", p.Faces, "gender", p.Gender, "emotion", p.Emotion, "error", err)
		preds = append(preds, p)
	}
	rep := attributesEval{Dir: dir, Labels: labels, AttributesReport: eval.Attributes(preds, want)}
	if asJSON {
		err = printJSON(env, rep)
	} else {
		err = printAttributesTable(stdoutOr(env.Stdout), rep.AttributesReport)
	}
	if err != nil {
		return err
	}
	if n := len(rep.Missing) + len(rep.Failed); n > 0 {
		return fmt.Errorf("%d of %d labelled photos are missing or could not be analysed (see the output)", n, len(want))
	}
	return nil
}

func printAttributesTable(w io.Writer, r eval.AttributesReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tGENDER\tLABEL\tEMOTION\tLABEL\tAGE\tMISTAKES")
	for _, row := range r.Rows {
		label := func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		}
		age := "-"
		if row.Age >= 0 {
			age = fmt.Sprintf("%.0f", row.Age)
			if row.Label.Age >= 0 {
				age += fmt.Sprintf(" (%.0f)", row.Label.Age)
			}
		}
		gender := label(row.Gender)
		if row.Gender != "" {
			gender += fmt.Sprintf(" %.2f", row.Score)
		}
		mistakes := strings.Join(row.Mistakes, ",")
		if row.Error != "" {
			mistakes = row.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Image, gender, label(row.Label.Gender), label(row.Emotion), label(row.Label.Expression), age, mistakes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "gender            %s\n", r.Gender)
	fmt.Fprintf(w, "smile vs neutral  %s\n", r.Smile)
	fmt.Fprintf(w, "happy on smiles   %s\n", r.Happy)
	fmt.Fprintf(w, "neutral on neutral %s\n", r.Neutral)
	fmt.Fprintf(w, "not happy on other %s\n", r.NotHappy)
	if r.AgeN > 0 {
		fmt.Fprintf(w, "age MAE           %.1f years over %d photos\n", r.AgeMAE, r.AgeN)
	}
	_, err := fmt.Fprintf(w, "no face: %s; missing: %s; failed: %s\n", listOrNone(r.NoFace), listOrNone(r.Missing), listOrNone(r.Failed))
	return err
}
