package eval

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// AttributeLabel is one labelled face photo of an attributes evaluation. An empty field (or an
// age below 0) means the photo has no label for that attribute.
type AttributeLabel struct {
	// Gender is "female", "male" or "".
	Gender string `json:"gender,omitempty"`
	// Expression is "smile", "neutral", "other" (a clear non-smile expression) or "" (no label:
	// the CSV's "unlabelled" or an empty cell).
	Expression string `json:"expression,omitempty"`
	// Age is the age in years, or -1 when not labelled.
	Age float64 `json:"age"`
}

// MaxLabelsSize bounds what ParseLabels reads, in bytes.
const MaxLabelsSize = 4 << 20

// ParseLabels reads an attributes label file: CSV with a header row naming its columns. A
// "file" column (the photo's name, relative to the folder evaluated) is required, and at least
// one of "gender" (female/male, also f/m, woman/man), "expression" (smile, neutral, other,
// unlabelled; "happy" is read as smile) and "age" (years, non-negative). Other columns are
// ignored; values are case-insensitive; empty cells mean no label. An unknown value, a file
// named twice, a row with the wrong number of cells or a file over MaxLabelsSize is an error
// naming its line.
func ParseLabels(r io.Reader) (map[string]AttributeLabel, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxLabelsSize+1))
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	if len(data) > MaxLabelsSize {
		return nil, fmt.Errorf("labels: larger than %d bytes", MaxLabelsSize)
	}
	cr := csv.NewReader(strings.NewReader(string(data)))
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("labels: empty file (want a CSV header with file and gender, expression or age)")
	}
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; !dup && h != "" {
			col[h] = i
		}
	}
	if _, ok := col["file"]; !ok {
		return nil, fmt.Errorf("labels: header %q has no \"file\" column", strings.Join(header, ","))
	}
	_, hasG := col["gender"]
	_, hasE := col["expression"]
	_, hasA := col["age"]
	if !hasG && !hasE && !hasA {
		return nil, fmt.Errorf("labels: header %q has none of the columns gender, expression, age", strings.Join(header, ","))
	}
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok {
			return strings.ToLower(strings.TrimSpace(rec[i]))
		}
		return ""
	}
	out := map[string]AttributeLabel{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		line, _ := cr.FieldPos(0)
		name := strings.TrimSpace(rec[col["file"]])
		if name == "" {
			return nil, fmt.Errorf("labels line %d: empty file name", line)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("labels line %d: %q given twice", line, name)
		}
		l := AttributeLabel{Age: -1}
		switch g := cell(rec, "gender"); g {
		case "female", "f", "woman":
			l.Gender = "female"
		case "male", "m", "man":
			l.Gender = "male"
		case "":
		default:
			return nil, fmt.Errorf("labels line %d: gender %q: want female, male or empty", line, g)
		}
		switch e := cell(rec, "expression"); e {
		case "smile", "happy":
			l.Expression = "smile"
		case "neutral", "other":
			l.Expression = e
		case "", "unlabelled", "unlabeled":
		default:
			return nil, fmt.Errorf("labels line %d: expression %q: want smile, neutral, other, unlabelled or empty", line, e)
		}
		if a := cell(rec, "age"); a != "" {
			v, err := strconv.ParseFloat(a, 64)
			if err != nil || v < 0 || v > 150 || math.IsNaN(v) {
				return nil, fmt.Errorf("labels line %d: age %q: want years, 0 to 150", line, a)
			}
			l.Age = v
		}
		out[name] = l
	}
	if len(out) == 0 {
		return nil, errors.New("labels: no rows after the header")
	}
	return out, nil
}

// AttributePrediction is what the pipeline said about one photo's face (its largest face).
type AttributePrediction struct {
	// Image is the photo's name, as in the labels.
	Image string
	// Faces is the number of faces found; the attributes are the largest face's.
	Faces int
	// Gender is the gender label shown ("female"/"male"), "" when none; GenderScore its
	// probability.
	Gender      string
	GenderScore float64
	// Emotion is the expression label shown (one of analyze.Emotions), "" when none.
	Emotion string
	// Age is the estimated age, or -1 when none.
	Age float64
	// Err is why the photo could not be analysed, or nil.
	Err error
}

// AttributeRow is one photo of an AttributesReport.
type AttributeRow struct {
	Image    string         `json:"image"`
	Label    AttributeLabel `json:"label"`
	Faces    int            `json:"faces"`
	Gender   string         `json:"gender,omitempty"`
	Score    float64        `json:"gender_score,omitempty"`
	Emotion  string         `json:"emotion,omitempty"`
	Age      float64        `json:"age"`
	Mistakes []string       `json:"mistakes,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// Score is a count of correct calls out of a total, and their ratio (0 when Total is 0).
type Score struct {
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	Accuracy float64 `json:"accuracy"`
}

func (s *Score) add(ok bool) {
	s.Total++
	if ok {
		s.Correct++
	}
	s.Accuracy = float64(s.Correct) / float64(s.Total)
}

// String is "0.933 (28/30)".
func (s Score) String() string {
	if s.Total == 0 {
		return "- (no labels)"
	}
	return fmt.Sprintf("%.3f (%d/%d)", s.Accuracy, s.Correct, s.Total)
}

// AttributesReport compares the pipeline's attributes with labels.
type AttributesReport struct {
	// Rows are the labelled photos, by name, then the labelled photos that were not found.
	Rows []AttributeRow `json:"rows"`
	// Gender: photos whose gender label matched, of those with a gender label and a face.
	Gender Score `json:"gender"`
	// Smile: smile-vs-neutral accuracy over the photos labelled smile or neutral (a smile is
	// right when the emotion shown is happy; neutral when it is anything but happy).
	Smile Score `json:"smile"`
	// Happy: of the photos labelled smile, those shown as happy (the recall of happy).
	Happy Score `json:"happy"`
	// Neutral: of the photos labelled neutral, those shown as neutral.
	Neutral Score `json:"neutral"`
	// NotHappy: of the photos labelled other (a clear non-smile), those not shown as happy.
	NotHappy Score `json:"not_happy_on_other"`
	// AgeMAE is the mean absolute age error in years over AgeN photos with an age label.
	AgeMAE float64 `json:"age_mae"`
	AgeN   int     `json:"age_n"`
	// NoFace lists labelled photos where no face was found; Missing the labelled photos not
	// among the predictions; Failed those that could not be analysed. Each counts as a miss for
	// every attribute it is labelled with.
	NoFace  []string `json:"no_face"`
	Missing []string `json:"missing"`
	Failed  []string `json:"failed"`
}

// Attributes scores predictions against labels. Predictions for photos without a label are
// ignored; a labelled photo without a prediction, a face or with an error counts as wrong.
func Attributes(preds []AttributePrediction, labels map[string]AttributeLabel) AttributesReport {
	rep := AttributesReport{NoFace: []string{}, Missing: []string{}, Failed: []string{}}
	byName := map[string]AttributePrediction{}
	for _, p := range preds {
		byName[p.Image] = p
	}
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var ageErr float64
	for _, n := range names {
		l := labels[n]
		p, found := byName[n]
		row := AttributeRow{Image: n, Label: l, Age: -1}
		switch {
		case !found:
			rep.Missing = append(rep.Missing, n)
			row.Error = "no such image"
		case p.Err != nil:
			rep.Failed = append(rep.Failed, n)
			row.Error = p.Err.Error()
		case p.Faces == 0:
			rep.NoFace = append(rep.NoFace, n)
			row.Error = "no face"
		default:
			row.Faces, row.Gender, row.Score, row.Emotion, row.Age = p.Faces, p.Gender, p.GenderScore, p.Emotion, p.Age
		}
		ok := row.Error == ""
		if l.Gender != "" {
			right := ok && row.Gender == l.Gender
			rep.Gender.add(right)
			if !right {
				row.Mistakes = append(row.Mistakes, "gender")
			}
		}
		happy := ok && row.Emotion == "happy"
		switch l.Expression {
		case "smile":
			rep.Smile.add(happy)
			rep.Happy.add(happy)
			if !happy {
				row.Mistakes = append(row.Mistakes, "smile")
			}
		case "neutral":
			rep.Smile.add(ok && row.Emotion != "" && !happy)
			rep.Neutral.add(ok && row.Emotion == "neutral")
			if !ok || row.Emotion == "" || happy {
				row.Mistakes = append(row.Mistakes, "smile")
			}
		case "other":
			rep.NotHappy.add(ok && row.Emotion != "" && !happy)
		}
		if l.Age >= 0 {
			if ok && row.Age >= 0 {
				rep.AgeN++
				ageErr += math.Abs(row.Age - l.Age)
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
	if rep.AgeN > 0 {
		rep.AgeMAE = ageErr / float64(rep.AgeN)
	}
	return rep
}
