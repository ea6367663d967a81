package result

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestResultRoundTrip(t *testing.T) {
	age := float32(31.5)
	in := Result{Schema: SchemaVersion, Stream: "cam1", Seq: 3, CapturedAt: time.Unix(10, 0).UTC(), AnalyzedAt: time.Unix(10, 5e7).UTC(),
		LatencyMS: 50, Width: 640, Height: 480, Faces: []Face{{Box: Box{1, 2, 3, 4}, Score: 0.9, Age: &age,
			Gender: &Gender{Label: "male", Score: 0.8}, Landmarks: []Point{{1, 2}}}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Seq != 3 || len(out.Faces) != 1 || *out.Faces[0].Age != age || out.Faces[0].Gender.Label != "male" {
		t.Fatalf("round trip lost data: %+v", out)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	face := generic["faces"].([]any)[0].(map[string]any)
	for _, absent := range []string{"emotion", "liveness", "pose", "identity", "embedding"} {
		if _, ok := face[absent]; ok {
			t.Errorf("field %q present though its head did not run", absent)
		}
	}
}

func TestEmptyFacesIsArray(t *testing.T) {
	b, _ := json.Marshal(Result{Schema: 1, Stream: "s", Faces: []Face{}})
	var generic map[string]any
	_ = json.Unmarshal(b, &generic)
	if _, ok := generic["faces"].([]any); !ok {
		t.Fatalf("faces is %T, want an array: %s", generic["faces"], b)
	}
}

func TestParseRejects(t *testing.T) {
	for _, doc := range []string{`{}`, `{"schema":2,"stream":"a"}`, `{"schema":1,"stream":"a.>"}`, `not json`, `{"schema":1,"stream":""}`} {
		if _, err := ParseResult([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("ParseResult(%s) = %v, want ErrSchema", doc, err)
		}
		if _, err := ParseDrop([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("ParseDrop(%s) = %v, want ErrSchema", doc, err)
		}
		if _, err := ParseEndOfStream([]byte(doc)); !errors.Is(err, ErrSchema) {
			t.Errorf("ParseEndOfStream(%s) = %v, want ErrSchema", doc, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schema":1,"stream":"cam1","seq":1,"faces":[{"box":{"x1":1}}]}`))
	f.Add([]byte(`{"schema":1,"stream":"cam1","frames":4}`))
	f.Add([]byte(`{"schema":1,"stream":"a.>"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := ParseResult(data); err == nil {
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("parsed result does not marshal: %v", err)
			}
			if _, err := ParseResult(b); err != nil {
				t.Fatalf("re-marshalled result does not parse: %v", err)
			}
		}
		_, _ = ParseDrop(data)
		_, _ = ParseEndOfStream(data)
	})
}
