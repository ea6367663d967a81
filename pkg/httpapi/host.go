package httpapi

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Host validation defends against DNS rebinding: a web page on attacker.example whose name the
// attacker re-points at 127.0.0.1 makes the browser send the attacker's requests, with
// "Host: attacker.example" and "Origin: http://attacker.example", to a server on the operator's
// machine, and the browser treats the answers as same-origin. A request naming a host this
// server does not serve is refused before anything else (CORS, keys, the route) looks at it.

// hostPolicy is the compiled AllowedHosts.
type hostPolicy struct {
	any      bool
	exact    map[string]bool // lower-case names
	suffixes []string        // ".example.com" for "*.example.com"
}

// newHostPolicy compiles the allowed names: always "localhost" (and names under .localhost,
// which resolve to loopback only), the machine's own host name, and allowed.
func newHostPolicy(allowed []string) hostPolicy {
	p := hostPolicy{exact: map[string]bool{"localhost": true}}
	if h, err := os.Hostname(); err == nil && h != "" {
		p.exact[strings.ToLower(h)] = true
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(a), "."))
		switch {
		case a == "*":
			p.any = true
		case strings.HasPrefix(a, "*."):
			p.suffixes = append(p.suffixes, a[1:])
		case a != "":
			p.exact[stripPort(a)] = true
		}
	}
	return p
}

// validateAllowedHost checks one AllowedHosts entry.
func validateAllowedHost(a string) error {
	a = strings.TrimSpace(a)
	if a == "*" {
		return nil
	}
	name := strings.TrimPrefix(stripPort(a), "*.")
	if name == "" || strings.ContainsAny(name, "*") || strings.ContainsAny(a, "/@?#, \t") {
		return fmt.Errorf("http: allowed host %q: want a host name (vigil.example.com), *.example.com, an IP address, or *", a)
	}
	return nil
}

// allows reports whether a request whose Host header is host may be served. IP literals always
// pass: a page can only be same-origin with an IP address by being served from it, so a literal
// cannot be rebound.
func (p hostPolicy) allows(host string) bool {
	if p.any {
		return true
	}
	name := strings.ToLower(strings.TrimSuffix(stripPort(host), "."))
	if name == "" {
		return false // HTTP/1.1 requires Host; HTTP/1.0 clients without one are not browsers worth serving
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return true
	}
	if p.exact[name] || strings.HasSuffix(name, ".localhost") {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// stripPort returns host without its ":port", brackets kept off IPv6 literals.
func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

// check answers 421 host_not_allowed and returns false when r names a host p does not allow.
func (p hostPolicy) check(w http.ResponseWriter, r *http.Request) bool {
	if p.allows(r.Host) {
		return true
	}
	WriteError(w, http.StatusMisdirectedRequest, "host_not_allowed",
		fmt.Sprintf("this server does not serve host %q (server setting --allowed-hosts; IP addresses and localhost are always served)",
			truncateHost(r.Host)))
	return false
}

// HostGuard returns next behind the Host check a Server applies (AllowedHosts), for HTTP servers
// that are not a Server, such as the metrics endpoint: requests naming a host other than an IP
// address, localhost (or *.localhost), the machine's host name or an allowed entry get 421
// host_not_allowed; requests for the paths in exempt (the probes) are served whatever their
// host. allowed takes AllowedHosts's entries; an invalid one is an error.
func HostGuard(allowed []string, next http.Handler, exempt ...string) (http.Handler, error) {
	for _, h := range allowed {
		if err := validateAllowedHost(h); err != nil {
			return nil, err
		}
	}
	p := newHostPolicy(allowed)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, e := range exempt {
			if r.URL.Path == e {
				next.ServeHTTP(w, r)
				return
			}
		}
		if p.check(w, r) {
			next.ServeHTTP(w, r)
		}
	}), nil
}

func truncateHost(h string) string {
	if len(h) > 100 {
		return h[:100] + "..."
	}
	return h
}

// refuseBadKeyClient answers 429 and returns true when caller (a client address) has spent its
// budget of wrong API keys: every request from it is refused until the budget refills, so keys
// cannot be guessed faster than BadKeysPerMinute, and a right key guessed during the block is
// not told apart from a wrong one.
func (s *Server) refuseBadKeyClient(w http.ResponseWriter, caller string) bool {
	if s.badKeys == nil {
		return false
	}
	blocked, wait := s.badKeys.blocked(caller)
	if !blocked {
		return false
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	WriteError(w, http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("too many wrong API keys from %s: retry in %d s", caller, secs))
	return true
}

// drain reads and discards what is left of an over-limit body, up to MaxDrainBytes: excess is
// how much the body declared beyond limit (-1: unknown, read up to the bound). A client that
// sends its whole body before reading the answer then finds the 413 instead of a reset
// connection. A body declaring more than the bound is not read at all.
// A client that asked "Expect: 100-continue" and whose body was refused unread has sent nothing
// yet, and reads the 413 as it is.
func (s *Server) drain(r *http.Request, body io.Reader, excess, limit int64) {
	if s.MaxDrainBytes <= 0 || excess > s.MaxDrainBytes || excess >= 0 && strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	_, _ = io.CopyN(io.Discard, body, limit+s.MaxDrainBytes)
}
