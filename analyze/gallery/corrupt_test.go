package gallery

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vigil-video/vigil/pkg/testenv"
)

// A corrupt stored record is skipped alike everywhere: Get fails with ErrRecord (not a store
// failure), List leaves it out and counts it, the watcher leaves it out of matching and counts
// it, and Delete still removes it.
func TestCorruptRecordSkippedEverywhere(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, StoreConfig{Log: slog.New(slog.DiscardHandler)})
	if _, err := s.Create(ctx, "Alice", []NewPhoto{{Embedding: unit(1, 512)}}); err != nil {
		t.Fatal(err)
	}
	g := Watch(s, WatchConfig{Log: slog.New(slog.DiscardHandler)})
	defer g.Close()
	for _, bad := range []string{"mallory", "trent"} {
		if _, err := s.kv.Put(ctx, key(bad), []byte(`{"schema":1,"name":"garbage"`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "mallory"); !errors.Is(err, ErrRecord) || errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(corrupt) = %v, want ErrRecord", err)
	}
	if s.CorruptReads() != 1 {
		t.Fatalf("CorruptReads = %d after one corrupt Get, want 1", s.CorruptReads())
	}
	list, err := s.List(ctx)
	if len(list) != 1 || list[0].Name != "Alice" || SkippedRecords(err) != 2 {
		t.Fatalf("List = %d identities, skipped %d (%v); want Alice and 2 skipped", len(list), SkippedRecords(err), err)
	}
	testenv.Eventually(t, 2*time.Second, "the watcher counts both corrupt records", func() bool { return g.Corrupt() == 2 })
	if g.Len() != 1 {
		t.Fatalf("the watcher indexed %d identities, want 1", g.Len())
	}
	if err := s.Delete(ctx, "mallory"); err != nil {
		t.Fatalf("Delete(corrupt) = %v", err)
	}
	if _, err := s.Get(ctx, "mallory"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	testenv.Eventually(t, 2*time.Second, "the watcher sees the corrupt record go", func() bool { return g.Corrupt() == 1 })
	if SkippedRecords(errors.New("other")) != 0 || SkippedRecords(nil) != 0 {
		t.Fatal("SkippedRecords counts errors that are not ErrRecord")
	}
}
