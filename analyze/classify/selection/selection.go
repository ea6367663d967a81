// Package selection says which custom classifiers run on which streams: the analyzer's
// configuration for classifiers that arrive and leave at run time.
//
// A selection is a list of rules "STREAMS=CLASSIFIERS" separated by ';' (or new lines), for
// example "lobby,door=helmet,clothes; parking=*; *=-". STREAMS is a comma-separated list of
// stream names or "*" (any stream); CLASSIFIERS is a comma-separated list of classifier names,
// "*" (every registered classifier, including ones registered later) or "-" (none). The first
// rule whose STREAMS matches a stream decides; a stream no rule matches runs none. The empty
// selection runs every classifier on every stream.
//
// The package is pure Go.
package selection

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ErrSyntax is wrapped by Parse's errors.
var ErrSyntax = errors.New("bad classifier selection")

// Selection is a parsed selection; the zero value runs everything everywhere.
type Selection struct {
	rules []rule
}

type rule struct {
	streams []string // "*" matches any
	models  []string // "*" all, empty none
}

var (
	streamRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	modelRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// Parse reads a selection (see the package documentation). Errors wrap ErrSyntax and quote the
// offending rule.
func Parse(s string) (Selection, error) {
	var sel Selection
	for _, raw := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		lhs, rhs, ok := strings.Cut(text, "=")
		if !ok {
			return Selection{}, fmt.Errorf("%w: rule %q: want STREAMS=CLASSIFIERS, e.g. lobby=helmet or *=*", ErrSyntax, text)
		}
		var r rule
		for _, st := range strings.Split(lhs, ",") {
			st = strings.TrimSpace(st)
			if st != "*" && !streamRE.MatchString(st) {
				return Selection{}, fmt.Errorf("%w: rule %q: stream %q is not a stream name ([A-Za-z0-9_-], at most 64) or *", ErrSyntax, text, st)
			}
			r.streams = append(r.streams, st)
		}
		rhs = strings.TrimSpace(rhs)
		if rhs != "-" {
			for _, m := range strings.Split(rhs, ",") {
				m = strings.TrimSpace(m)
				if m != "*" && !modelRE.MatchString(m) {
					return Selection{}, fmt.Errorf("%w: rule %q: classifier %q is not a classifier name, * or -", ErrSyntax, text, m)
				}
				r.models = append(r.models, m)
			}
		}
		sel.rules = append(sel.rules, r)
	}
	return sel, nil
}

// Runs reports whether classifier model runs on stream.
func (s Selection) Runs(stream, model string) bool {
	if len(s.rules) == 0 {
		return true
	}
	for _, r := range s.rules {
		if slices.Contains(r.streams, "*") || slices.Contains(r.streams, stream) {
			return slices.Contains(r.models, "*") || slices.Contains(r.models, model)
		}
	}
	return false
}

// String renders the selection in the syntax Parse reads.
func (s Selection) String() string {
	if len(s.rules) == 0 {
		return "*=*"
	}
	parts := make([]string, len(s.rules))
	for i, r := range s.rules {
		m := strings.Join(r.models, ",")
		if m == "" {
			m = "-"
		}
		parts[i] = strings.Join(r.streams, ",") + "=" + m
	}
	return strings.Join(parts, "; ")
}
