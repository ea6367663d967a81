package faceapi

import (
	"net/http"
	"testing"
)

// TestNumbersFinite: NaN and infinities are not numbers a field may take. threshold=NaN on
// /v1/verify used to compare false with both bounds and pass, giving 200 with an empty body.
func TestNumbersFinite(t *testing.T) {
	for _, s := range []string{"NaN", "nan", "-NaN", "Inf", "+Inf", "-Inf", "infinity", "1e999", "-1e999"} {
		if _, err := parseFloat(form{fields: map[string]string{"threshold": s}}, "threshold", 0.5, -1, 1); err == nil || err.Status != http.StatusBadRequest {
			t.Errorf("threshold %q: %v, want 400", s, err)
		}
	}
	for s, want := range map[string]float32{"": 0.5, "0.25": 0.25, "-1": -1, "1": 1, " 0.3 ": 0.3} {
		if v, err := parseFloat(form{fields: map[string]string{"threshold": s}}, "threshold", 0.5, -1, 1); err != nil || v != want {
			t.Errorf("threshold %q: %v %v, want %v", s, v, err, want)
		}
	}
}
