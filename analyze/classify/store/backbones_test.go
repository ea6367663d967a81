package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
	"github.com/vigil-video/vigil/analyze/classify/store"
)

// TestBackbones: a backbone uploaded once is listed and read back with its digest checked by any
// store on the same bucket; bad names, oversized models and unknown names are refused.
func TestBackbones(t *testing.T) {
	ctx := context.Background()
	_, js := open(t, store.Config{})
	b, err := store.OpenBackbones(ctx, js, store.Config{MaxModelBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := b.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty bucket: %v, %v", list, err)
	}
	model := bytes.Repeat([]byte("onnx "), 100000) // several chunks
	e, err := b.Put(ctx, "mobilenetv2", model)
	if err != nil || e.Name != "mobilenetv2" || e.SHA256 != store.Digest(model) || e.Size != uint64(len(model)) {
		t.Fatalf("put: %+v, %v", e, err)
	}
	// Another process opening the bucket sees it.
	other, err := store.OpenBackbones(ctx, js, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got, data, err := other.Get(ctx, "mobilenetv2")
	if err != nil || !bytes.Equal(data, model) || got.SHA256 != e.SHA256 {
		t.Fatalf("get: %+v, %d bytes, %v", got, len(data), err)
	}
	list, err := other.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "mobilenetv2" || list[0].SHA256 != e.SHA256 || list[0].ModTime.IsZero() {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if _, err := b.Put(ctx, "bad/name", model); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := b.Put(ctx, "huge", make([]byte, 1<<20+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, _, err := b.Get(ctx, "nothing"); !errors.Is(err, store.ErrBackboneNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if err := b.Delete(ctx, "mobilenetv2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "mobilenetv2"); !errors.Is(err, store.ErrBackboneNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if list, _ := b.List(ctx); len(list) != 0 {
		t.Fatalf("after delete: %+v", list)
	}
}
