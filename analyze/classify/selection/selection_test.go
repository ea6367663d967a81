package selection

import (
	"errors"
	"testing"
)

func TestSelection(t *testing.T) {
	sel, err := Parse("lobby,door=helmet,clothes; parking=*\n*=-")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stream, model string
		want          bool
	}{
		{"lobby", "helmet", true},
		{"door", "clothes", true},
		{"lobby", "other", false},
		{"parking", "anything", true},
		{"garden", "helmet", false},
	} {
		if got := sel.Runs(tc.stream, tc.model); got != tc.want {
			t.Errorf("Runs(%s, %s) = %v, want %v", tc.stream, tc.model, got, tc.want)
		}
	}
	if s := sel.String(); s != "lobby,door=helmet,clothes; parking=*; *=-" {
		t.Errorf("String() = %q", s)
	}
	var zero Selection
	if !zero.Runs("any", "thing") || zero.String() != "*=*" {
		t.Error("the zero selection must run everything everywhere")
	}
	empty, err := Parse("  ;\n ")
	if err != nil || !empty.Runs("a", "b") {
		t.Errorf("blank selection: %v", err)
	}
	// No rule matches: nothing runs.
	only, _ := Parse("lobby=*")
	if only.Runs("door", "x") {
		t.Error("a stream no rule names ran a classifier")
	}
	for _, bad := range []string{"lobby", "lob.by=x", "lobby=Bad", "=x", "a=", "a.b=*", "a=x y"} {
		if _, err := Parse(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error = %v, want ErrSyntax", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"lobby,door=helmet,clothes; parking=*\n*=-", "*=*", "", "a=b=c", ";;=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(sel.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", sel.String(), err)
		}
		if again.String() != sel.String() {
			t.Fatalf("round trip %q -> %q", sel.String(), again.String())
		}
	})
}
