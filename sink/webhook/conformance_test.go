package webhook_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/sink/sinktest"
	"github.com/vigil-video/vigil/sink/webhook"
)

// TestSinkConformance: a webhook's receiver (a real HTTP server) gets each result whole, in
// order, before Write returns.
func TestSinkConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Destination {
		var (
			mu  sync.Mutex
			got []result.Result
			bad error
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p webhook.Payload
			err := json.NewDecoder(r.Body).Decode(&p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad = fmt.Errorf("receiver: %w", err)
			case p.Result != nil:
				got = append(got, *p.Result)
			}
		}))
		t.Cleanup(srv.Close)
		s := &webhook.Sink{URL: srv.URL}
		if err := s.Initialize(); err != nil {
			t.Fatal(err)
		}
		read := func() ([]result.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]result.Result(nil), got...), bad
		}
		return sinktest.Destination{Sink: s, Read: read, Complete: true}
	})
}
