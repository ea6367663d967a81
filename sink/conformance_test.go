package sink_test

import (
	"bufio"
	"bytes"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink"
	"github.com/vigil-video/vigil/sink/sinktest"
)

// lockedBuffer is a bytes.Buffer read by the suite while the sink writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) results() ([]result.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []result.Result
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		r, err := result.ParseResult(sc.Bytes())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func TestJSONLinesConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Destination {
		var buf lockedBuffer
		return sinktest.Destination{Sink: sink.NewJSONLines(&buf), Read: buf.results, Complete: true}
	})
}

func TestPrometheusConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Destination {
		p, err := sink.NewPrometheus(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		return sinktest.Destination{Sink: p} // counters only: no results to read back
	})
}
