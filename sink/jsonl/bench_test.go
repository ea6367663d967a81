package jsonl

import (
	"context"
	"path/filepath"
	"testing"
)

func benchWrite(b *testing.B, w *Writer) {
	w.Path = filepath.Join(b.TempDir(), "r.jsonl")
	if err := w.Initialize(); err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := res(1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Seq = uint64(i + 1)
		if err := w.Write(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s := w.Stats()
	b.SetBytes(int64(s.Bytes) / int64(max(b.N, 1)))
	b.ReportMetric(float64(s.Rotations), "rotations")
}

// BenchmarkWrite: one result per line, reaching the OS at once, rotating every 1 MiB, keeping 3.
func BenchmarkWrite(b *testing.B) { benchWrite(b, &Writer{MaxBytes: 1 << 20, Keep: 3}) }

// BenchmarkWriteSync: the same with an fsync per line (Sync).
func BenchmarkWriteSync(b *testing.B) { benchWrite(b, &Writer{MaxBytes: 1 << 20, Keep: 3, Sync: true}) }
