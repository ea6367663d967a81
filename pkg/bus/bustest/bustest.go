// Package bustest starts real NATS servers inside a test process: a single JetStream server or
// a JetStream cluster on loopback, in the style of nats-server's own test/test.go (random ports,
// JetStream StoreDir under t.TempDir()). Only tests import it.
package bustest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of NATS servers in this process. Servers that were shut down
// are nil in Servers.
type Cluster struct {
	// Servers are the running servers, by index; nil after Shutdown.
	Servers []*server.Server
	opts    []*server.Options
}

// StartServer starts one NATS server with JetStream on a random loopback port and shuts it
// down when the test ends.
func StartServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{
		ServerName: "vigil-test", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), MaxPayload: 8 << 20,
	}
	s := run(t, opts)
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func run(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	return s
}

// freePorts reserves n loopback ports and releases them for the servers to bind.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// StartCluster starts n clustered JetStream servers (named n1..nN, cluster "vigil", full route
// mesh on loopback), waits until JetStream has a meta leader, and shuts them down when the test
// ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	var routes []string
	for i := 0; i < n; i++ {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: "n" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: ports[i], NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(), MaxPayload: 8 << 20,
			Cluster: server.ClusterOpts{Name: "vigil", Host: "127.0.0.1", Port: ports[n+i], PoolSize: -1},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.opts = append(c.opts, opts)
	}
	// Start all before waiting on any: a clustered JetStream server is not ready until it sees
	// its peers.
	for _, opts := range c.opts {
		s, err := server.NewServer(opts)
		if err != nil {
			c.shutdownAll()
			t.Fatalf("nats server: %v", err)
		}
		s.Start()
		c.Servers = append(c.Servers, s)
	}
	t.Cleanup(c.shutdownAll)
	for _, s := range c.Servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats server %s not ready", s.Name())
		}
	}
	c.WaitMetaLeader(t, 30*time.Second)
	return c
}

func (c *Cluster) shutdownAll() {
	for i := range c.Servers {
		c.Shutdown(i)
	}
}

// URL returns the client URLs of every running server, comma-separated.
func (c *Cluster) URL() string {
	var urls []string
	for _, s := range c.Servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Shutdown stops server i and waits until it has stopped.
func (c *Cluster) Shutdown(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// WaitMetaLeader waits until a running server is the JetStream meta leader.
func (c *Cluster) WaitMetaLeader(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range c.Servers {
			if s != nil && s.JetStreamIsLeader() {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling a server's state; not a test of timing
	}
}

// StreamLeader returns the index of the server leading stream in the global account, or -1.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}
