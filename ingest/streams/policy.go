package streams

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SourcePolicy says which sources a stream created or changed through the API (HTTP
// /v1/streams, the NATS subject vigil.control.streams) may read. Streams from the operator's own
// flags and streams file are not subject to it. The zero value is the safe default: no local
// files, no cameras, and URL sources only on addresses that are not loopback, link-local (cloud
// metadata services live there), unspecified or multicast. Private networks (10/8, 172.16/12,
// 192.168/16, fc00::/7) are allowed: that is where cameras are.
//
// A source is checked when a request sets or changes it, and refused with ErrForbidden (403
// source_not_allowed) or ErrInvalid (400: a name that does not resolve, a file missing under an
// allowed directory). A refusal never says whether a file outside the allowed directories
// exists, and nothing is sent to a remote host. Host names are resolved once, here: a DNS
// answer that changes later, or an HTTP redirect the source follows, is not re-checked, which is
// why the deny rules are a guard for the machine itself, not a network firewall.
type SourcePolicy struct {
	// FileDirs are the directories whose files (at any depth, after resolving symbolic links)
	// API streams may read, as absolute paths. Default none: local files are refused.
	FileDirs []string
	// AllowDevices lets API streams open local cameras (device:N, /dev/videoN). Default false.
	AllowDevices bool
	// AllowHosts are the host names, IP addresses and CIDR prefixes URL sources may name even
	// though the address rules refuse them, e.g. "127.0.0.1" for an RTSP server on this machine.
	// Default none.
	AllowHosts []string
	// Schemes are the URL schemes API streams may use, a subset of rtsp, rtsps, http, https.
	// Default all four.
	Schemes []string
	// Resolver resolves host names. Default net.DefaultResolver.
	Resolver *net.Resolver
	// LookupTimeout bounds one host name's resolution. Default 3 s.
	LookupTimeout time.Duration
}

// ErrForbidden: the source policy refuses the source.
var ErrForbidden = errors.New("source not allowed")

// networkSchemes are the URL schemes a stream may read at all.
var networkSchemes = []string{"rtsp", "rtsps", "http", "https"}

// Validate checks the policy's fields.
func (p SourcePolicy) Validate() error {
	for _, d := range p.FileDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("streams: file directory %q: give an absolute path", d)
		}
	}
	for _, s := range p.Schemes {
		if !slices.Contains(networkSchemes, strings.ToLower(s)) {
			return fmt.Errorf("streams: URL scheme %q: want some of %s", s, strings.Join(networkSchemes, ", "))
		}
	}
	for _, h := range p.AllowHosts {
		if _, err := parseAllowHost(h); err != nil {
			return err
		}
	}
	return nil
}

// allowEntry is one AllowHosts entry: a prefix (an address is a /32 or /128) or a name.
type allowEntry struct {
	prefix netip.Prefix
	name   string
}

func parseAllowHost(h string) (allowEntry, error) {
	h = strings.TrimSpace(h)
	if pfx, err := netip.ParsePrefix(h); err == nil {
		return allowEntry{prefix: pfx.Masked()}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		a = a.Unmap()
		return allowEntry{prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if h == "" || strings.ContainsAny(h, "/:@ ") {
		return allowEntry{}, fmt.Errorf("streams: allowed host %q: want a host name, an IP address or a CIDR prefix", h)
	}
	return allowEntry{name: strings.ToLower(strings.TrimSuffix(h, "."))}, nil
}

// Check applies the policy to a source that is not PushSource. local reports whether this
// process runs the stream: only then is a file's existence checked (another node has its own
// file system). It returns nil, or an error wrapping ErrForbidden or ErrInvalid whose text names
// the rule and the setting that changes it.
func (p SourcePolicy) Check(ctx context.Context, source string, local bool) error {
	switch {
	case strings.HasPrefix(source, "device:"), strings.HasPrefix(source, "/dev/video"):
		if !p.AllowDevices {
			return fmt.Errorf("%w: cameras on the ingest machine cannot be opened through the API (ingest setting --stream-allow-devices)", ErrForbidden)
		}
		return nil
	case !strings.Contains(source, "://"):
		return p.checkFile(source, local)
	}
	u, err := url.Parse(source)
	if err != nil {
		return fmt.Errorf("%w: source is not a valid URL", ErrInvalid)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "file" {
		return p.checkFile(u.Path, local)
	}
	schemes := networkSchemes
	if len(p.Schemes) > 0 {
		schemes = nil
		for _, s := range p.Schemes {
			schemes = append(schemes, strings.ToLower(s))
		}
	}
	if !slices.Contains(schemes, scheme) {
		return fmt.Errorf("%w: URL scheme %q is not allowed (allowed: %s; ingest setting --stream-schemes)", ErrForbidden, scheme, strings.Join(schemes, ", "))
	}
	return p.checkHost(ctx, u.Hostname())
}

// checkFile allows path only under FileDirs. The refusal of a path outside them is the same
// whether or not it exists.
func (p SourcePolicy) checkFile(path string, local bool) error {
	refuse := func() error {
		if len(p.FileDirs) == 0 {
			return fmt.Errorf("%w: local files cannot be read through the API (ingest setting --stream-file-dirs allows directories)", ErrForbidden)
		}
		return fmt.Errorf("%w: local files can be read through the API only under %s (ingest setting --stream-file-dirs)", ErrForbidden, strings.Join(p.FileDirs, ", "))
	}
	if !filepath.IsAbs(path) {
		if len(p.FileDirs) == 0 {
			return refuse()
		}
		return fmt.Errorf("%w: give the file as an absolute path under %s", ErrForbidden, strings.Join(p.FileDirs, ", "))
	}
	path = filepath.Clean(path)
	dir := p.dirOf(path, false)
	if dir == "" {
		return refuse()
	}
	if !local {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("%w: source: no such file %s under %s", ErrInvalid, path, dir)
	}
	if p.dirOf(real, true) == "" {
		return fmt.Errorf("%w: source %s: a link that leads outside %s", ErrForbidden, path, strings.Join(p.FileDirs, ", "))
	}
	st, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%w: source: no such file %s under %s", ErrInvalid, path, dir)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: source %s: not a regular file (a directory, device or pipe)", ErrInvalid, path)
	}
	return nil
}

// dirOf returns the FileDirs entry path lies under, or "". With resolved, the directories'
// symbolic links are resolved first (path is a resolved path).
func (p SourcePolicy) dirOf(path string, resolved bool) string {
	for _, d := range p.FileDirs {
		d = filepath.Clean(d)
		if resolved {
			r, err := filepath.EvalSymlinks(d)
			if err != nil {
				continue
			}
			d = r
		}
		if rel, err := filepath.Rel(d, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "." {
			return d
		}
	}
	return ""
}

// checkHost refuses loopback, link-local, unspecified and multicast addresses (and names
// resolving to any), unless AllowHosts names them.
func (p SourcePolicy) checkHost(ctx context.Context, host string) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	var allow []allowEntry
	for _, h := range p.AllowHosts {
		if e, err := parseAllowHost(h); err == nil {
			if e.name != "" && e.name == name {
				return nil
			}
			allow = append(allow, e)
		}
	}
	if name == "" {
		return fmt.Errorf("%w: source URL without a host", ErrInvalid)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(name); err == nil {
		addrs = []netip.Addr{a}
	} else if numericName(name) {
		return fmt.Errorf("%w: source host %s is neither a host name nor an IP address in standard form", ErrInvalid, host)
	} else if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		addrs = []netip.Addr{netip.IPv6Loopback()}
	} else {
		res := p.Resolver
		if res == nil {
			res = net.DefaultResolver
		}
		timeout := p.LookupTimeout
		if timeout <= 0 {
			timeout = 3 * time.Second
		}
		lctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		addrs, err = res.LookupNetIP(lctx, "ip", name)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("%w: source host %s does not resolve", ErrInvalid, host)
		}
	}
	for _, a := range addrs {
		a = a.Unmap()
		if why := refusedAddr(a); why != "" && !allowed(allow, a) {
			return fmt.Errorf("%w: source host %s is %s; streams created through the API may not read it (ingest setting --stream-allow-hosts)",
				ErrForbidden, host, why)
		}
	}
	return nil
}

func allowed(allow []allowEntry, a netip.Addr) bool {
	for _, e := range allow {
		if e.prefix.IsValid() && e.prefix.Contains(a) {
			return true
		}
	}
	return false
}

// metadataAddrs are cloud metadata services outside the link-local ranges.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
}

// refusedAddr says why a is refused by default, or "".
func refusedAddr(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "a loopback address (this machine)"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address (cloud metadata services live there)"
	case a.IsUnspecified(), a.Is4() && a.As4()[0] == 0:
		return "an unspecified address"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "a multicast or broadcast address"
	case slices.Contains(metadataAddrs, a):
		return "a cloud metadata address"
	}
	return ""
}

// numericName reports whether name's last label is a number (decimal, octal or 0x-hex): no
// top-level domain is, but C resolvers read such names as IPv4 addresses ("2130706433",
// "127.1", "0x7f.1" are 127.0.0.1), which would slip past the address rules.
func numericName(name string) bool {
	last := name[strings.LastIndex(name, ".")+1:]
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		last = h
		return last == "" || strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
