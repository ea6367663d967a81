package faceapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/result"
)

// gateEngine holds every Analyze call until released: the one stand-in for the models in this
// package's tests, used to fill the concurrency slots deterministically. The real engine is
// tested in analyze/faceengine.
type gateEngine struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gateEngine) Analyze(ctx context.Context, _ []byte, _ Options) (Analysis, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return Analysis{}, ctx.Err()
	}
	return Analysis{Width: 64, Height: 48}, nil
}

func startServer(t *testing.T, cfg Config) (*API, string) {
	t.Helper()
	srv := &httpapi.Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)}
	cfg.Log = slog.New(slog.DiscardHandler)
	a, err := Mount(srv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return a, srv.URL()
}

// TestBusy: with one slot and one waiting place, a third concurrent request gets 503 busy at
// once, and the server serves again when the first two are done.
func TestBusy(t *testing.T) {
	g := &gateEngine{entered: make(chan struct{}, 4), release: make(chan struct{})}
	a, url := startServer(t, Config{Engine: g, MaxConcurrent: 1, MaxWaiting: 1})
	img := testJPEG(t)
	post := func() (int, string) {
		resp, err := http.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(img))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := post()
			codes <- c
		}()
	}
	<-g.entered // the first holds the slot
	deadline := time.Now().Add(10 * time.Second)
	for a.cfg.Gate.Stats().Waiting < 1 { // the second is admitted and waits
		if time.Now().After(deadline) {
			t.Fatal("the second request never arrived")
		}
		<-time.After(time.Millisecond) // poll interval
	}
	code, body := post()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"busy"`) {
		t.Fatalf("third request: %d %s, want 503 busy", code, body)
	}
	close(g.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("a queued request got %d", c)
		}
	}
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("after the burst: %d %s", code, body)
	}
}

// failEngine fails every call with its error.
type failEngine struct{ err error }

func (f failEngine) Analyze(context.Context, []byte, Options) (Analysis, error) {
	return Analysis{}, f.err
}

// TestEngineErrors: an engine's decode error is the client's 400, anything else a 500 that does
// not leak the internal message.
func TestEngineErrors(t *testing.T) {
	img := testJPEG(t)
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{errors.New("onnxruntime: secret internal detail"), 500, "internal"},
		{errors.Join(ErrInvalidImage, errors.New("OpenCV could not decode")), 400, "invalid_image"},
		{ErrUnknownHead, 400, "unknown_head"},
	} {
		_, url := startServer(t, Config{Engine: failEngine{c.err}})
		resp, err := http.Post(url+"/v1/detect", "image/jpeg", bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error httpapi.Error }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.status || body.Error.Code != c.code || strings.Contains(body.Error.Message, "secret") {
			t.Errorf("engine error %v: %d %+v", c.err, resp.StatusCode, body.Error)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []Config{
		{},
		{Engine: failEngine{}, DefaultHeads: []string{"telepathy"}},
		{Engine: failEngine{}, Threshold: 2},
		{Engine: failEngine{}, Gallery: &gallery.Gallery{}},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
	a, err := New(Config{Engine: failEngine{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Routes()) != 5 {
		t.Fatalf("without a gallery: routes %v, want the 5 image routes", a.Routes())
	}
	if a.cfg.Threshold != gallery.DefaultThreshold {
		t.Fatalf("default threshold %v", a.cfg.Threshold)
	}
	heads, perr := a.parseHeads(" age , pose,age")
	if perr != nil || strings.Join(heads, ",") != "age,pose" {
		t.Fatalf("parseHeads = %v, %v", heads, perr)
	}
	if h, _ := a.parseHeads("all"); len(h) != 5 {
		t.Fatalf("all = %v", h)
	}
	if h, _ := a.parseHeads("none"); len(h) != 0 {
		t.Fatalf("none = %v", h)
	}
}

// TestOpenAPIMatchesTypes keeps the hand-written schemas in step with the JSON the handlers
// write: every JSON field of each response type is a property of its schema, and back.
func TestOpenAPIMatchesTypes(t *testing.T) {
	s := schemas()
	for name, v := range map[string]any{
		"Face": result.Face{}, "Box": result.Box{}, "Point": result.Point{}, "FaceIdentity": result.Identity{},
		"Gender": result.Gender{}, "Emotion": result.Emotion{}, "Liveness": result.Liveness{}, "Pose": result.Pose{},
		"FacesResponse": FacesResponse{}, "VerifyResponse": VerifyResponse{}, "IdentifyResponse": IdentifyResponse{},
		"IdentifiedFace": IdentifiedFace{}, "Candidate": gallery.Candidate{}, "GalleryIdentity": gallery.Identity{},
		"Photo": gallery.Photo{}, "IdentitySummary": IdentitySummary{}, "IdentityList": IdentityList{}, "EnrollResponse": EnrollResponse{},
		"EnrolledFace": EnrolledFace{},
	} {
		sch, ok := s[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		props := sch["properties"].(map[string]any)
		fields := jsonFields(reflect.TypeOf(v))
		for f := range fields {
			if _, ok := props[f]; !ok {
				t.Errorf("schema %s lacks property %q of %T", name, f, v)
			}
		}
		for p := range props {
			if !fields[p] {
				t.Errorf("schema %s documents %q, which %T does not have", name, p, v)
			}
		}
	}
	// Every reference in the document resolves.
	a, _, _ := func() (*API, string, error) {
		a, err := New(Config{Engine: failEngine{}, Store: &gallery.Store{}, Gallery: &gallery.Gallery{}})
		return a, "", err
	}()
	doc, _ := json.Marshal(a.doc())
	for _, ref := range strings.Split(string(doc), `"$ref":"#/components/schemas/`)[1:] {
		name := ref[:strings.IndexByte(ref, '"')]
		if _, ok := s[name]; !ok && name != "ErrorResponse" {
			t.Errorf("dangling reference to schema %s", name)
		}
	}
	if len(a.Routes()) != 12 {
		t.Fatalf("with a gallery: %d routes", len(a.Routes()))
	}
}

// jsonFields returns the JSON names of t's fields, following embedded structs.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && tag == "" {
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = true
	}
	return out
}

func TestAttributeLines(t *testing.T) {
	age := float32(41.6)
	lines := attributeLines(result.Face{Age: &age, Gender: &result.Gender{Label: "female", Score: 0.1},
		Emotion:  &result.Emotion{Label: "happy", Scores: map[string]float32{"happy": 0.9}},
		Liveness: &result.Liveness{Real: false, Score: 0.2}, Pose: &result.Pose{Yaw: 10}})
	want := "age 42|female 0.10|happy 0.90|spoof? 0.20|yaw 10 pitch 0 roll 0"
	if got := strings.Join(lines, "|"); got != want {
		t.Fatalf("lines %q, want %q", got, want)
	}
}
