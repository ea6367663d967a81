package httpapi

import (
	"sort"
	"sync"
)

// RouteUnmatched is the route RequestCount names for requests no route matched (404, 405).
const RouteUnmatched = "unmatched"

// RequestCount is how many requests one route answered with one status code.
type RequestCount struct {
	// Route is the pattern the route was mounted with ("GET /v1/streams/{name}"), or
	// RouteUnmatched: a bounded set, whatever paths clients send.
	Route string
	// Code is the HTTP status code of the answer.
	Code int
	// Count is the number of such requests since the server was built.
	Count uint64
}

// requestCounts counts answered requests by route and status code.
type requestCounts struct {
	mu sync.Mutex
	n  map[routeCode]uint64
}

type routeCode struct {
	route string
	code  int
}

func (c *requestCounts) add(route string, code int) {
	if route == "" {
		route = RouteUnmatched
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[routeCode]uint64{}
	}
	c.n[routeCode{route, code}]++
	c.mu.Unlock()
}

// Requests returns how many requests each route answered with each status code, sorted by
// route then code. Safe to call at any time (a metrics scrape).
func (s *Server) Requests() []RequestCount {
	s.counts.mu.Lock()
	out := make([]RequestCount, 0, len(s.counts.n))
	for k, n := range s.counts.n {
		out = append(out, RequestCount{Route: k.route, Code: k.code, Count: n})
	}
	s.counts.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Route != out[j].Route {
			return out[i].Route < out[j].Route
		}
		return out[i].Code < out[j].Code
	})
	return out
}
