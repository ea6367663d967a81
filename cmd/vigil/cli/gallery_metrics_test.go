package cli

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// TestGalleryMetrics: a corrupt identity record in the bucket shows in
// vigil_gallery_corrupt_records (the watcher's count) and each read that skipped it in
// vigil_gallery_corrupt_reads_total.
func TestGalleryMetrics(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	ns := &bus.EmbeddedServer{StoreDir: t.TempDir(), Logger: quiet}
	if err := ns.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := bus.Connect(ctx, ns.ClientURL(), "gallery-metrics-test", quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := gallery.OpenStore(ctx, js, gallery.StoreConfig{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc := &faceService{Store: store, Gallery: gallery.Watch(store, gallery.WatchConfig{Log: quiet})}
	t.Cleanup(svc.Close)
	if _, err := store.KV().Put(ctx, gallery.KeyPrefix+"mallory", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, "mallory"); err == nil {
		t.Fatal("Get of a corrupt record succeeded")
	}
	testenv.Eventually(t, 10*time.Second, "1 corrupt record and 1 corrupt read in the series", func() bool {
		s := gatherSeries(t, galleryMetrics(svc))
		return s["vigil_gallery_corrupt_records"][""] == 1 && s["vigil_gallery_corrupt_reads_total"][""] == 1
	})
}
