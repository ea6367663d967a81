package eval

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Range is an inclusive range of face counts.
type Range struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// Contains reports whether Min <= n <= Max.
func (r Range) Contains(n int) bool { return n >= r.Min && n <= r.Max }

// String is "N" for a single count, "MIN-MAX" otherwise (the syntax ParseRange reads).
func (r Range) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// ParseRange reads "N" or "MIN-MAX" (spaces around the dash allowed): non-negative integers,
// MIN <= MAX.
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 0 || b < a {
		return Range{}, fmt.Errorf("face count %q: want N or MIN-MAX, non-negative with MIN <= MAX", s)
	}
	return Range{Min: a, Max: b}, nil
}

// MaxExpectationsSize bounds what ParseExpectations reads, in bytes.
const MaxExpectationsSize = 1 << 20

// ParseExpectations reads expected face counts, one image a line, as "NAME: N" or
// "NAME: MIN-MAX" (a YAML mapping of file names to counts): NAME is an image's file name (or
// path relative to the folder evaluated); blank lines, "#" comments and a "---" line are
// ignored; either side may be quoted. A malformed line or a name given twice is an error naming
// the line; a file over MaxExpectationsSize is an error too.
func ParseExpectations(r io.Reader) (map[string]Range, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxExpectationsSize+1))
	if err != nil {
		return nil, fmt.Errorf("expectations: %w", err)
	}
	if len(data) > MaxExpectationsSize {
		return nil, fmt.Errorf("expectations: larger than %d bytes", MaxExpectationsSize)
	}
	out := map[string]Range{}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1 // line number
		line := strings.TrimSpace(stripComment(raw))
		if line == "" || line == "---" {
			continue
		}
		colon := strings.LastIndex(line, ":")
		if colon < 0 {
			return nil, fmt.Errorf("expectations line %d: %q: want NAME: N or NAME: MIN-MAX", n, line)
		}
		name, count := unquote(strings.TrimSpace(line[:colon])), unquote(strings.TrimSpace(line[colon+1:]))
		if name == "" {
			return nil, fmt.Errorf("expectations line %d: %q: no image name", n, line)
		}
		rg, err := ParseRange(count)
		if err != nil {
			return nil, fmt.Errorf("expectations line %d: %w", n, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("expectations line %d: %q given twice", n, name)
		}
		out[name] = rg
	}
	return out, nil
}

// stripComment cuts a "#" comment: one starting the line or following white space (so that
// "photo#2.jpg: 1" keeps its name).
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

// unquote removes one pair of matching single or double quotes around s.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// Count is the number of faces found in one image, or why none could be counted.
type Count struct {
	// Image is the name expectations refer to it by.
	Image string
	// Faces is the number of faces found (meaningless when Err is set).
	Faces int
	// Err is why the image could not be analysed (unreadable, not an image), or nil.
	Err error
}

// Status is one image's outcome in a DetectionReport.
type Status string

// The statuses: OK and Unchecked pass, the others fail the report.
const (
	// StatusOK: the count is within the expected range.
	StatusOK Status = "ok"
	// StatusOutside: the count is outside the expected range.
	StatusOutside Status = "outside"
	// StatusUnchecked: no count is expected for the image.
	StatusUnchecked Status = "unchecked"
	// StatusMissing: a count is expected for an image that was not found.
	StatusMissing Status = "missing"
	// StatusError: the image could not be analysed.
	StatusError Status = "error"
)

// DetectionRow is one image of a DetectionReport.
type DetectionRow struct {
	// Image is the image's name, as in Count.Image or the expectations.
	Image string `json:"image"`
	// Faces is the number of faces found; 0 for a missing image or an error.
	Faces int `json:"faces"`
	// Expected is the expected range, nil when none was given.
	Expected *Range `json:"expected,omitempty"`
	// Status is the outcome; Error says why for StatusError and StatusMissing.
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
}

// DetectionReport compares face counts with their expected ranges.
type DetectionReport struct {
	// Images are the counted images in the order given, then the expected images that were not
	// counted (StatusMissing), by name.
	Images []DetectionRow `json:"images"`
	// Checked counts the rows with an expectation, Failed the rows whose status is outside,
	// missing or error.
	Checked int `json:"checked"`
	Failed  int `json:"failed"`
	// Negatives counts the counted images expected to hold no face (expected range 0), and
	// FalseFaces the faces found on them: every one is a false face.
	Negatives  int `json:"negatives"`
	FalseFaces int `json:"false_faces"`
}

// OK reports whether no row failed.
func (r DetectionReport) OK() bool { return r.Failed == 0 }

// Detection builds the report of counts against expect (nil or empty: nothing is checked, and
// only errors fail).
func Detection(counts []Count, expect map[string]Range) DetectionReport {
	var rep DetectionReport
	seen := map[string]bool{}
	for _, c := range counts {
		seen[c.Image] = true
		row := DetectionRow{Image: c.Image, Faces: c.Faces, Status: StatusUnchecked}
		if rg, ok := expect[c.Image]; ok {
			row.Expected = &rg
			rep.Checked++
			row.Status = StatusOutside
			if rg.Contains(c.Faces) {
				row.Status = StatusOK
			}
		}
		if c.Err != nil {
			row.Faces, row.Status, row.Error = 0, StatusError, c.Err.Error()
		}
		if row.Expected != nil && row.Expected.Max == 0 && c.Err == nil {
			rep.Negatives++
			rep.FalseFaces += row.Faces
		}
		rep.Images = append(rep.Images, row)
	}
	var missing []string
	for name := range expect {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		rg := expect[name]
		rep.Checked++
		rep.Images = append(rep.Images, DetectionRow{Image: name, Expected: &rg, Status: StatusMissing, Error: "no such image"})
	}
	for _, row := range rep.Images {
		if row.Status == StatusOutside || row.Status == StatusMissing || row.Status == StatusError {
			rep.Failed++
		}
	}
	return rep
}
