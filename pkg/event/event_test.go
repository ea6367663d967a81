package event

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/vigil-video/vigil/pkg/frame"
)

func TestEventSubject(t *testing.T) {
	if s, err := EventSubject("lobby", KindRecognized); err != nil || s != "vigil.events.lobby.face.recognized" {
		t.Fatalf("EventSubject = %q, %v", s, err)
	}
	for _, bad := range [][2]string{{"a.b", KindLeft}, {"lobby", "face.>"}, {"lobby", ""}, {"*", KindAppeared}} {
		if _, err := EventSubject(bad[0], bad[1]); err == nil {
			t.Errorf("EventSubject(%q, %q): no error", bad[0], bad[1])
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, doc := range []string{
		`not json`,
		`{"schema":2,"kind":"face.left","stream":"a","track_id":"x"}`,
		`{"schema":1,"kind":"face.gone","stream":"a","track_id":"x"}`,
		`{"schema":1,"kind":"face.left","stream":"a.b","track_id":"x"}`,
		`{"schema":1,"kind":"face.left","stream":"a"}`,
	} {
		if _, err := ParseEvent([]byte(doc)); !errors.Is(err, ErrEvent) {
			t.Errorf("ParseEvent(%s) = %v, want ErrEvent", doc, err)
		}
	}
	for _, doc := range []string{
		`not json`,
		`{"schema":2,"stream":"a","heads":["pose"]}`,
		`{"schema":1,"stream":"a b","heads":["pose"]}`,
		`{"schema":1,"stream":"a","heads":["po,se"]}`,
		`{"schema":1,"stream":"a","heads":[""]}`,
		`{"schema":1,"stream":"a","heads":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}`,
	} {
		if _, err := ParseHeadsRequest([]byte(doc)); !errors.Is(err, ErrEvent) {
			t.Errorf("ParseHeadsRequest(%s) = %v, want ErrEvent", doc, err)
		}
	}
}

// FuzzParse: whatever ParseEvent accepts re-encodes to a document it accepts again, and whatever
// heads ParseHeadsRequest accepts survive a frame's Vigil-Heads header unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schema":1,"kind":"face.appeared","stream":"cam","track_id":"k1-1","seq":2,"crop":{"stream":"cam","seq":2,"box":{"x1":1,"y1":2,"x2":3,"y2":4},"width":640,"height":480}}`))
	f.Add([]byte(`{"schema":1,"kind":"face.left","stream":"cam","track_id":"k1-1","reason":"lost","identity":{"name":"Ann","similarity":0.7}}`))
	f.Add([]byte(`{"schema":1,"stream":"cam","heads":["emotion","liveness","pose"],"reason":"new_track"}`))
	f.Add([]byte(`{"schema":1,"stream":"cam","heads":["po,se"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := ParseEvent(data); err == nil {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("parsed event does not marshal: %v", err)
			}
			if _, err := ParseEvent(b); err != nil {
				t.Fatalf("re-marshalled event does not parse: %v", err)
			}
		}
		if r, err := ParseHeadsRequest(data); err == nil {
			fr := frame.Frame{Stream: r.Stream, Seq: 1, Width: 1, Height: 1, Encoding: frame.EncodingJPEG, Data: []byte{1}, Heads: r.Heads}
			m, err := fr.Msg("vigil.frames." + r.Stream)
			if err != nil {
				t.Fatalf("accepted heads %q make an invalid frame: %v", r.Heads, err)
			}
			back, err := frame.FromMsg(m)
			if err != nil || len(r.Heads) > 0 && !slices.Equal(back.Heads, r.Heads) {
				t.Fatalf("heads %q came back as %q (%v)", r.Heads, back.Heads, err)
			}
		}
	})
}
