package jsonl_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/jsonl"
	"github.com/vigil-video/vigil/sink/sinktest"
)

func TestWriterConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Destination {
		path := filepath.Join(t.TempDir(), "results.jsonl")
		w := &jsonl.Writer{Path: path}
		if err := w.Initialize(); err != nil {
			t.Fatal(err)
		}
		read := func() ([]result.Result, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			var out []result.Result
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				r, err := result.ParseResult(sc.Bytes())
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, sc.Err()
		}
		return sinktest.Destination{Sink: w, Read: read, Complete: true}
	})
}
