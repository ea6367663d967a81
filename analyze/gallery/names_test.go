package gallery

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIDFor(t *testing.T) {
	for name, want := range map[string]string{
		"Barack Obama":       "barack-obama",
		"  barack   OBAMA  ": "barack-obama",
		"barack-obama":       "barack-obama",
		"J.R.R. Tolkien":     "j-r-r-tolkien",
		"Shaquille O'Neal":   "shaquille-o-neal",
		"Shaquille O’Neal":   "shaquille-o-neal",
		"Zoë Saldaña":        "zo_eb_-salda_f1_a",
		"李小龍":                "_674e__5c0f__9f8d_",
		"-Madonna-":          "madonna",
		"R2 D2":              "r2-d2",
		"john_savage":        "john-savage",
		"e\u0301":            "_e9_", // NFC: the combining acute accent composes to é
		"\u0391\u03b8\u03b7": "_3b1__3b8__3b7_",
	} {
		got, err := IDFor(name)
		if err != nil || got != want {
			t.Errorf("IDFor(%q) = %q, %v; want %q", name, got, err, want)
		}
		if !ValidID(got) {
			t.Errorf("IDFor(%q) = %q is not a ValidID", name, got)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	for name, why := range map[string]string{
		"":                          "empty",
		"   ":                       "empty",
		"- . _":                     "no letter",
		"a/b":                       `'/'`,
		"a>b":                       `'>'`,
		"x\x00y":                    `'\x00'`,
		"tab\there":                 "", // tabs are spaces: collapsed, valid
		"\xff\xfe":                  "UTF-8",
		"smile 😀":                   "not allowed",
		strings.Repeat("a", 65):     "longer than 64",
		strings.Repeat("a ", 33):    "longer than 64",
		"identity.*":                `'*'`,
		"semi;colon":                `';'`,
		"<script>alert(1)</script>": `'<'`,
	} {
		_, err := IDFor(name)
		if why == "" {
			if err != nil {
				t.Errorf("IDFor(%q): %v, want valid", name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), why) {
			t.Errorf("IDFor(%q) error = %v, want ErrInvalidName saying %s", name, err, why)
		}
	}
	if c, err := CanonicalName(strings.Repeat("a", 64)); err != nil || len(c) != 64 {
		t.Errorf("64 characters: %q, %v", c, err)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"barack-obama": true, "a": true, "_e9_": true, "": false, "-a": false, "a-": false,
		"Barack": false, "a.b": false, "a b": false, "a/b": false, "*": false, ">": false,
		strings.Repeat("a", 1536): true, strings.Repeat("a", 1537): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

// FuzzIDFor: any string either is refused with ErrInvalidName or gets a valid id that its
// canonical form shares; two names with the same id differ only in case and separators.
func FuzzIDFor(f *testing.F) {
	for _, s := range []string{"Barack Obama", "  barack   OBAMA ", "Zoë", "李小龍", "a/b", "", "- .", "e\u0301", "\xff", "O’Neal"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, err := IDFor(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("IDFor(%q): error %v does not wrap ErrInvalidName", name, err)
			}
			return
		}
		if !ValidID(id) {
			t.Fatalf("IDFor(%q) = %q is not a ValidID", name, id)
		}
		c, err := CanonicalName(name)
		if err != nil {
			t.Fatalf("CanonicalName(%q): %v after IDFor accepted it", name, err)
		}
		if utf8.RuneCountInString(c) > MaxNameRunes {
			t.Fatalf("canonical %q is longer than %d", c, MaxNameRunes)
		}
		if c2, err := CanonicalName(c); err != nil || c2 != c {
			t.Fatalf("CanonicalName is not idempotent: %q -> %q -> %q, %v", name, c, c2, err)
		}
		if id2, _ := IDFor(c); id2 != id {
			t.Fatalf("IDFor(%q) = %q but IDFor(canonical %q) = %q", name, id, c, id2)
		}
		if id3, _ := IDFor(strings.ToUpper(c)); strings.ToUpper(c) != c && utf8.ValidString(strings.ToUpper(c)) && id3 != "" && id3 != id && isASCII(c) {
			t.Fatalf("case changes the id of ASCII name %q: %q vs %q", c, id, id3)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
