package gallery

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestNamesNormalised: a name is one identity however its characters are encoded or cased:
// NFC and NFD spellings, the Kelvin sign and K, ß and SS, Greek capitals and a final sigma.
func TestNamesNormalised(t *testing.T) {
	nfc, nfd := "Zo\u00eb Salda\u00f1a", "Zoe\u0308 Saldan\u0303a"
	for _, same := range [][2]string{{nfc, nfd}, {"\u212aim", "kim"}, {"Stra\u00dfe", "STRASSE"}, {"\u1e9ee", "sse"}, {"\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2"}} {
		a, err := IDFor(same[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := IDFor(same[1])
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%q and %q have ids %q and %q, want one", same[0], same[1], a, b)
		}
	}
	// Folding may lengthen a name (ᾀ folds to two letters): the longest still has a valid id.
	if id, err := IDFor(strings.Repeat("\u1f80", MaxNameRunes)); err != nil || !ValidID(id) {
		t.Errorf("64 x U+1F80: id of %d bytes, %v, valid %v", len(id), err, ValidID(id))
	}
	if c, _ := CanonicalName(nfd); c != nfc {
		t.Errorf("canonical form of the NFD spelling is %q, want the NFC %q", c, nfc)
	}

	ctx := context.Background()
	s, _ := newStore(t, StoreConfig{})
	first, err := s.Create(ctx, nfc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, nfd, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("the NFD spelling of an enrolled name: %v, want ErrExists", err)
	}
	if _, err := s.Create(ctx, "kim", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "\u212aIM", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("Kelvin-sign spelling of kim: %v, want ErrExists", err)
	}
	id, _ := IDFor(nfd)
	if got, err := s.Get(ctx, id); err != nil || got.ID != first.ID || got.Name != nfc {
		t.Fatalf("get by the NFD spelling's id: %+v %v", got, err)
	}
}
