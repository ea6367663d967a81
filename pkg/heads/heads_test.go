package heads_test

import (
	"slices"
	"testing"

	"github.com/vigil-video/vigil/pkg/heads"
)

func TestLists(t *testing.T) {
	all := []string{"embedding", "age", "gender", "emotion", "liveness", "pose"}
	if got := heads.All(); !slices.Equal(got, all) {
		t.Fatalf("All() = %q, want %q", got, all)
	}
	if got, want := heads.Default(), []string{"embedding", "age", "gender", "liveness", "pose"}; !slices.Equal(got, want) {
		t.Fatalf("Default() = %q, want %q (all but emotion)", got, want)
	}
	if got, want := heads.Attributes(), []string{"age", "gender", "emotion", "liveness", "pose"}; !slices.Equal(got, want) {
		t.Fatalf("Attributes() = %q, want %q (all but the embedding)", got, want)
	}
	// Each call returns a fresh slice: a caller changing it changes nobody else's.
	a := heads.All()
	a[0] = "changed"
	if heads.All()[0] != heads.Embedding {
		t.Fatal("All() shares its slice between calls")
	}
}
