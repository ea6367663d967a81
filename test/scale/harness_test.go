// Package scale is Vigil's multi-process test: a 3-node NATS cluster (the nats-server module
// built as test/scale/natsnode, running deploy/nats/nats.conf) and ingest, analyzers and sinks
// as separate bin/vigil processes on loopback, killed and restarted the way production loses
// them.
//
// `go test ./test/scale` (part of `make test`) runs TestScaleKillAnalyzer (~40 s on 2 cores):
// kill -9 one of two analyzers mid-stream. `make scale-test` also runs, with VIGIL_SCALE_TEST=1,
// TestScaleFailover (kill -9 a NATS node and the sink, restart both, ~2 min), and with
// VIGIL_SCALE_BENCH=1 TestScaleBenchmark (analyzer scaling 1 vs 2 processes pinned with
// taskset, latency with 8 streams at 5 fps, batch sizes; ~3 min). VIGIL_SCALE_LOGS=DIR keeps
// every process's log under DIR/<test name>/.
package scale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/result"
	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// natsPassword is the test cluster's password for user "vigil" (deploy/nats/nats.conf).
const natsPassword = "scale-test-password"

// binaries are the programs a test runs.
type binaries struct {
	vigil, natsnode string
}

// build compiles bin/vigil and the natsnode helper into a temporary directory.
func build(t *testing.T) binaries {
	t.Helper()
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	b := binaries{vigil: filepath.Join(dir, "vigil"), natsnode: filepath.Join(dir, "natsnode")}
	for out, pkg := range map[string]string{b.vigil: "./cmd/vigil", b.natsnode: "./test/scale/natsnode"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, o)
		}
	}
	return b
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs bin with args; env is added to this process's environment. The process is killed
// and waited for when the test ends, and its log is printed when the test failed.
func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if dir := os.Getenv("VIGIL_SCALE_LOGS"); dir != "" { // keep every process's log
			dst := filepath.Join(dir, t.Name())
			if os.MkdirAll(dst, 0o755) == nil {
				if b, err := os.ReadFile(p.log); err == nil {
					_ = os.WriteFile(filepath.Join(dst, filepath.Base(p.log)), b, 0o644)
				}
			}
		}
		if t.Failed() {
			t.Logf("---- %s log (tail) ----\n%s", name, tail(p.logText(), 4000))
		}
	})
	return p
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(timeout); err != nil {
		t.Fatalf("%s after SIGTERM: %v", p.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its error (nil: exit 0).
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLog waits until p's log contains text.
func waitLog(t *testing.T, p *proc, text string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, fmt.Sprintf("%q in the %s log", text, p.name), func() bool {
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, text, tail(p.logText(), 3000))
		}
		return strings.Contains(p.logText(), text)
	})
}

func freePorts(t *testing.T, n int) []int {
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

// cluster is NATS servers running deploy/nats/nats.conf as separate processes on loopback.
type cluster struct {
	t                      *testing.T
	bin, conf              string
	client, route, monitor []int
	dirs                   []string
	nodes                  []*proc
}

// startCluster starts n (≤ 3, the config's route list) nodes and waits until JetStream has a
// leader.
func startCluster(t *testing.T, bin string, n int) *cluster {
	t.Helper()
	ports := freePorts(t, 3*n)
	c := &cluster{t: t, bin: bin, conf: filepath.Join(testenv.RepoRoot(t), "deploy", "nats", "nats.conf"),
		client: ports[:n], route: ports[n : 2*n], monitor: ports[2*n:]}
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.nodes = append(c.nodes, nil)
		c.start(i)
	}
	for i := 0; i < n; i++ {
		c.waitHealthy(i)
	}
	c.waitJetStream()
	return c
}

func (c *cluster) env(i int) []string {
	routes := make([]string, 3)
	for j := range routes {
		port := c.route[min(j, len(c.route)-1)]
		routes[j] = fmt.Sprintf("nats-route://127.0.0.1:%d", port)
	}
	return []string{
		fmt.Sprintf("NATS_SERVER_NAME=n%d", i+1),
		fmt.Sprintf("NATS_CLIENT_LISTEN=127.0.0.1:%d", c.client[i]),
		fmt.Sprintf("NATS_CLUSTER_LISTEN=127.0.0.1:%d", c.route[i]),
		fmt.Sprintf("NATS_MONITOR_PORT=%d", c.monitor[i]),
		"NATS_ROUTE_1=" + routes[0], "NATS_ROUTE_2=" + routes[1], "NATS_ROUTE_3=" + routes[2],
		"NATS_STORE_DIR=" + c.dirs[i],
		"VIGIL_NATS_PASSWORD=" + natsPassword,
		"NATS_SYS_PASSWORD=sys-" + natsPassword,
	}
}

// start (re)starts node i with its store directory.
func (c *cluster) start(i int) {
	c.nodes[i] = start(c.t, fmt.Sprintf("nats-%d", i+1), c.env(i), c.bin, "-c", c.conf)
}

func (c *cluster) waitHealthy(i int) {
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", c.monitor[i])
	testenv.Eventually(c.t, 30*time.Second, "nats node "+url, func() bool {
		if c.nodes[i].exited() {
			c.t.Fatalf("nats node %d exited: %v\n%s", i+1, c.nodes[i].err, tail(c.nodes[i].logText(), 3000))
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// waitJetStream waits until the cluster answers JetStream account requests (a meta leader exists).
func (c *cluster) waitJetStream() {
	nc := c.connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testenv.Eventually(c.t, 60*time.Second, "a JetStream meta leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}

// url is every node's client URL, comma-separated.
func (c *cluster) url() string {
	var u []string
	for _, p := range c.client {
		u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	return strings.Join(u, ",")
}

// connect opens a test client (user vigil) to the cluster.
func (c *cluster) connect() *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(c.url(), nats.UserInfo("vigil", natsPassword), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	return nc
}

// nodeIndex maps a server name (n1..n3) to its index.
func nodeIndex(name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "n%d", &i); err != nil {
		return -1
	}
	return i - 1
}

// stored is what VIGIL_RESULTS holds for each stream: the test's oracle.
type stored struct {
	results map[string]map[uint64]int // stream -> seq -> copies
	drops   map[string]map[string]int // stream -> reason -> count
	frames  map[string]uint64         // stream -> end-of-stream frame count
}

// readStored reads every message of VIGIL_RESULTS.
func readStored(t *testing.T, nc *nats.Conn) stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, bus.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := stored{results: map[string]map[uint64]int{}, drops: map[string]map[string]int{}, frames: map[string]uint64{}}
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			subj := m.Subject()
			switch {
			case strings.HasPrefix(subj, bus.ResultsPrefix+"."):
				r, err := result.ParseResult(m.Data())
				if err != nil {
					t.Fatalf("stored result: %v", err)
				}
				if s.results[r.Stream] == nil {
					s.results[r.Stream] = map[uint64]int{}
				}
				s.results[r.Stream][r.Seq]++
			case strings.HasPrefix(subj, bus.DropsPrefix+"."):
				d, err := result.ParseDrop(m.Data())
				if err != nil {
					t.Fatalf("stored drop: %v", err)
				}
				if s.drops[d.Stream] == nil {
					s.drops[d.Stream] = map[string]int{}
				}
				s.drops[d.Stream][d.Reason]++
			case strings.HasPrefix(subj, bus.EOSPrefix+"."):
				e, err := result.ParseEndOfStream(m.Data())
				if err != nil {
					t.Fatalf("stored end of stream: %v", err)
				}
				s.frames[e.Stream] = e.Frames
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
		n += uint64(got)
		if got == 0 {
			t.Fatalf("read %d of %d stored messages", n, info.State.Msgs)
		}
	}
	return s
}

// readJSONL parses a sink's JSON-lines output.
func readJSONL(t *testing.T, path string) []result.Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []result.Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		r, err := result.ParseResult(sc.Bytes())
		if err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

// scrape returns the value of an unlabelled metric from a Prometheus endpoint.
func scrape(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("metric %s not found at %s", name, url)
}

// scrapeAll returns every sample line of metrics whose name starts with prefix.
func scrapeAll(url, prefix string) ([]string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			out = append(out, sc.Text())
		}
	}
	return out, sc.Err()
}

// writeConfig writes a Vigil configuration file (the format every role reads) into dir.
func writeConfig(t *testing.T, dir string, doc map[string]any) string {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ") // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// consumerCaughtUp reports whether the durable consumer has delivered and had acknowledged
// everything stored.
func consumerCaughtUp(nc *nats.Conn, durable string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	c, err := js.Consumer(ctx, bus.ResultsStream, durable)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}
