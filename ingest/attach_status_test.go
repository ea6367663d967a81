package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/ingest/streams"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// demoVideo is Debian's OpenCV demo clip (apt package opencv-doc, installed by make setup):
// 24 fps, so a 5 fps stream samples most frames out.
const demoVideo = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"

// TestAttachedInStreamList: a stream attached from outside the list (a browser over WHIP)
// appears in the Registry's List and Get with its counters, sampling apart from drops, and in
// the ingest collector's series beside the managed streams; it leaves them when it ends.
func TestAttachedInStreamList(t *testing.T) {
	nc, _ := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := &Attached{Conn: nc, Defaults: StreamConfig{FPS: 5, MaxWidth: 320, MaxHeight: 240}}
	defer a.Close()
	m := &Manager{Conn: nc}
	if err := m.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reg := &streams.Registry{Runner: m, Store: &streams.MemoryStore{}, Attached: a.Statuses,
		Seed: []streams.Spec{{Name: "door", Source: streams.PushSource, Enabled: true}}}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	src, err := Open(ctx, demoVideo, OpenOptions{Loop: true, Realtime: true})
	if err != nil {
		t.Fatalf("%v: run \"make setup\" (apt package opencv-doc)", err)
	}
	if err := a.Attach("browser", src); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "two frames of the attached stream published", func() bool {
		st, err := reg.Get("browser")
		return err == nil && st.Stats != nil && st.Stats.Published >= 2
	})
	st, _ := reg.Get("browser")
	if st.Source != AttachedSource || st.State != streams.StateLive || !st.RunsHere || st.Stats.SampledOut == 0 || st.Stats.Dropped != 0 ||
		st.Stats.Width == 0 || st.Stats.Width > 320 {
		t.Fatalf("attached stream status %+v stats %+v: want whip, live, frames sampled out and none dropped", st, *st.Stats)
	}
	var names []string
	for _, s := range reg.List() {
		names = append(names, s.Name)
	}
	if len(names) != 2 || names[0] != "browser" || names[1] != "door" {
		t.Fatalf("List() = %v, want browser (attached) and door (stored), by name", names)
	}

	pr := prometheus.NewPedanticRegistry()
	if err := pr.Register(StreamsCollector(m, a)); err != nil {
		t.Fatal(err)
	}
	fams, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	published := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "vigil_ingest_stream_frames_published_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			published[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
		}
	}
	if _, ok := published["door"]; !ok || published["browser"] < 2 {
		t.Fatalf("published series %v, want door (managed) and browser (attached, at least 2)", published)
	}

	a.Close() // the publisher leaves: so does its stream
	if _, err := reg.Get("browser"); err == nil {
		t.Fatal("the attached stream is still listed after it ended")
	}
}
