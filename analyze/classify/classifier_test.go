package classify_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-video/vigil/analyze/classify"
	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
	"github.com/vigil-video/vigil/pkg/onnx"
	"github.com/vigil-video/vigil/pkg/testenv"
	"github.com/vigil-video/vigil/pkg/vision"
)

// imageNetLabels reads the 1000 ImageNet class names, one per line ("n01440764 tench, ...";
// the WordNet id keeps them unique).
func imageNetLabels(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.TestData(t), "models", "synset.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if len(l) > 128 {
			l = strings.TrimSpace(l[:128])
		}
		labels = append(labels, l)
	}
	if len(labels) != 1000 {
		t.Fatalf("%d ImageNet labels", len(labels))
	}
	return labels
}

// imageNetManifest describes MobileNetV2 itself as a classifier: the manifest a user would
// write to bring that model.
func imageNetManifest(t testing.TB, name string) manifest.Manifest {
	in := classify.ImageNetBackbone("", nil).Input
	in.Name = "input"
	m := manifest.Manifest{Name: name, Labels: imageNetLabels(t), Target: manifest.TargetFrame, Input: in,
		Output: manifest.Output{Name: "output", Softmax: true}}
	m.SetDefaults()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

// withExternalData returns model with one more initializer whose data lives in an external file
// (a second graph field merges into the first).
func withExternalData(model []byte) []byte {
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), []byte(s))
	}
	var entry []byte
	entry = str(entry, 1, "location")
	entry = str(entry, 2, "/etc/passwd")
	var tensor []byte
	tensor = protowire.AppendVarint(protowire.AppendTag(tensor, 1, protowire.VarintType), 1)
	tensor = protowire.AppendVarint(protowire.AppendTag(tensor, 2, protowire.VarintType), 1)
	tensor = str(tensor, 8, "vigil_external")
	tensor = protowire.AppendBytes(protowire.AppendTag(tensor, 13, protowire.BytesType), entry)
	tensor = protowire.AppendVarint(protowire.AppendTag(tensor, 14, protowire.VarintType), 1)
	g := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), tensor)
	out := append([]byte(nil), model...)
	return protowire.AppendBytes(protowire.AppendTag(out, 7, protowire.BytesType), g)
}

// decode reads and decodes an image of the shared test data.
func decodeFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoad(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	model := mobileNet(t)
	m := imageNetManifest(t, "imagenet")
	c, err := classify.Load(ctx, rt, m, model, onnx.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A running shoe photo: ImageNet's own classes should say shoe.
	ds := clothes(t)
	var shoe int
	for i, im := range ds.Images {
		if ds.Classes[im.Class] == "shoes" {
			shoe = i
			break
		}
	}
	data, _ := ds.ReadImage(shoe)
	img, err := vision.Decode(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	preds, err := c.Predict(ctx, []classify.Target{{Name: "frame", Image: img, Rect: rectOf(img)}})
	if err != nil {
		t.Fatal(err)
	}
	p := preds[0]
	sum := float32(0)
	for _, s := range p.Scores {
		sum += s
	}
	t.Logf("MobileNetV2 on %s: %s (%.2f)", ds.Images[shoe].Path, p.Label, p.Score)
	if len(p.Scores) != 1000 || sum < 0.99 || sum > 1.01 {
		t.Errorf("%d scores summing to %v after softmax", len(p.Scores), sum)
	}
}

func TestLoadRejects(t *testing.T) {
	testenv.NeedsTestData(t)
	ctx := context.Background()
	rt := newRuntime(t)
	model := mobileNet(t)
	base := imageNetManifest(t, "imagenet")
	edit := func(fn func(m *manifest.Manifest)) manifest.Manifest {
		m := base.Clone()
		fn(&m)
		m.SetDefaults()
		return m
	}
	jpeg := decodeFile(t, filepath.Join(testenv.TestData(t), "detect", "no-faces.jpg"))
	tests := []struct {
		name  string
		m     manifest.Manifest
		model []byte
		want  error
		says  string
	}{
		{"labels count differs from outputs", edit(func(m *manifest.Manifest) { m.Labels = []string{"a", "b", "c", "d"} }), model, manifest.ErrModel, "1000 scores per image, but the manifest has 4 labels"},
		{"wrong input size", edit(func(m *manifest.Manifest) { m.Input.Width, m.Input.Height, m.Input.ResizeSize = 200, 200, 0 }), model, manifest.ErrModel, "height 200"},
		{"wrong layout", edit(func(m *manifest.Manifest) { m.Input.Layout = manifest.LayoutNHWC }), model, manifest.ErrModel, "NHWC"},
		{"wrong channels", edit(func(m *manifest.Manifest) { m.Input.Color, m.Input.Mean, m.Input.Std = manifest.ColorGray, nil, nil }), model, manifest.ErrModel, "channels 1"},
		{"unknown output", edit(func(m *manifest.Manifest) { m.Output.Name = "logits" }), model, manifest.ErrModel, `output.name "logits"`},
		{"unknown input name", edit(func(m *manifest.Manifest) { m.Input.Name = "data" }), model, manifest.ErrModel, `called "input"`},
		{"truncated ONNX", base, model[:len(model)/2], manifest.ErrModel, "not an ONNX model"},
		{"JPEG bytes", base, jpeg, manifest.ErrModel, "not an ONNX model"},
		{"empty file", base, nil, manifest.ErrModel, "not an ONNX model"},
		{"external data", base, withExternalData(model), manifest.ErrModel, "external"},
		{"digest mismatch", edit(func(m *manifest.Manifest) { m.SHA256 = store.Digest([]byte("another model")) }), model, store.ErrDigest, "registered sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := classify.Load(ctx, rt, tc.m, tc.model, onnx.SessionOptions{})
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
	// The right digest is accepted.
	ok := base.Clone()
	ok.SHA256 = store.Digest(model)
	c, err := classify.Load(ctx, rt, ok, model, onnx.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if !bytes.Equal(model, mobileNet(t)) {
		t.Error("Load modified the model bytes")
	}
}
