package gallery

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// MaxNameRunes bounds an identity name's length in characters (after trimming).
const MaxNameRunes = 64

// maxIDLen bounds an identity id: every character of a maximal name case-folded to three
// characters (the most full case folding gives) and each escaped (see IDFor).
const maxIDLen = MaxNameRunes * 3 * len("_10ffff_")

// ErrInvalidName is wrapped by the errors for names that are not acceptable identity names.
var ErrInvalidName = errors.New("invalid identity name")

// isSeparator reports the punctuation a name may hold between its words.
func isSeparator(r rune) bool {
	switch r {
	case ' ', '-', '_', '.', '\'', '\u2019':
		return true
	}
	return false
}

// CanonicalName validates an identity name and returns its canonical form: Unicode NFC
// (so "Zoë" typed with a combining diaeresis and with the precomposed ë is one name, and the
// Kelvin sign is the letter K), surrounding spaces trimmed and runs of spaces inside collapsed
// to one. A name is 1 to MaxNameRunes characters of
// valid UTF-8: letters and digits of any script, combining marks, spaces and the punctuation
// . - _ ' ’, with at least one letter or digit. Anything else (control characters, slashes,
// emoji, ...) wraps ErrInvalidName with a message saying what is wrong.
func CanonicalName(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrInvalidName)
	}
	s = norm.NFC.String(s)
	var b strings.Builder
	n, alnum := 0, false
	space := false
	for _, r := range strings.TrimFunc(s, unicode.IsSpace) {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			alnum = true
		case unicode.IsMark(r) || isSeparator(r):
		default:
			return "", fmt.Errorf("%w: character %q is not allowed (use letters, digits, spaces and . - _ ')", ErrInvalidName, r)
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
		if n > MaxNameRunes {
			return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidName, MaxNameRunes)
		}
	}
	if n == 0 {
		return "", fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if !alnum {
		return "", fmt.Errorf("%w: %q has no letter or digit", ErrInvalidName, b.String())
	}
	return b.String(), nil
}

// IDFor validates name (see CanonicalName) and returns its identity id, the key under which the
// gallery stores it and the {id} of the HTTP API. The id is the canonical name case-folded
// (Unicode full case folding, then NFC again: "STRASSE", "Straße" and "strasse" are one id) with ASCII
// letters and digits kept, each run of spaces and punctuation turned into one '-' (none at either
// end), and every other character written as '_' + its lower-case code point in hex + '_':
// "Barack Obama" is barack-obama, "Zoë Saldaña" zo_eb_-salda_f1_a. Two names with the same id
// (they differ only in case, spacing or punctuation) are the same identity.
func IDFor(name string) (string, error) {
	c, err := CanonicalName(name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	dash := false
	for _, r := range norm.NFC.String(cases.Fold().String(c)) {
		switch {
		case isSeparator(r):
			dash = b.Len() > 0
			continue
		case dash:
			b.WriteByte('-')
			dash = false
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String(), nil
}

// ValidID reports whether id has the form of an identity id: 1 to 1536 characters from
// [a-z0-9_-], not starting or ending with '-'. Only ids that pass are ever turned into KV keys.
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDLen || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validPhotoID reports whether id has the form newPhotoID gives: 16 lower-case hex digits.
func validPhotoID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
