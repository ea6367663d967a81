// Package deploy holds no code: its tests validate the deployment files in this directory, since
// no container engine or cluster runs where the tests do. They parse every file the way its tool
// would (the NATS configuration with the nats-server module's own parser, YAML documents one by
// one), check the keys each tool requires, and check the files against each other and against
// the code: images, users, ports, config files, secret and stream names, metric names.
// cmd/vigil/cli's TestDeployCommands runs every command line they contain through the real CLI.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
)

// natsServerVersion reads the nats-server module version go.mod pins.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod does not require nats-server")
	}
	return string(m[1])
}

// natsEnv sets the environment deploy/nats/nats.conf reads.
func natsEnv(t *testing.T) {
	for k, v := range map[string]string{
		"NATS_SERVER_NAME": "nats-1", "NATS_CLIENT_LISTEN": "0.0.0.0:4222", "NATS_CLUSTER_LISTEN": "0.0.0.0:6222",
		"NATS_MONITOR_PORT": "8222", "NATS_ROUTE_1": "nats-route://nats-1:6222", "NATS_ROUTE_2": "nats-route://nats-2:6222",
		"NATS_ROUTE_3": "nats-route://nats-3:6222", "NATS_STORE_DIR": t.TempDir(), "VIGIL_NATS_PASSWORD": "p1", "NATS_SYS_PASSWORD": "p2",
	} {
		t.Setenv(k, v)
	}
}

// TestNATSConfig parses deploy/nats/nats.conf with nats-server's own parser (what
// `nats-server -c` does) and checks the cluster it describes.
func TestNATSConfig(t *testing.T) {
	natsEnv(t)
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatalf("nats-server rejects nats/nats.conf: %v", err)
	}
	switch {
	case opts.ServerName != "nats-1" || opts.Host != "0.0.0.0" || opts.Port != 4222 || opts.HTTPPort != 8222:
		t.Errorf("listeners: name %q host %q port %d monitor %d", opts.ServerName, opts.Host, opts.Port, opts.HTTPPort)
	case !opts.JetStream || opts.StoreDir == "":
		t.Errorf("JetStream off or without a store dir")
	case opts.Cluster.Name != "vigil" || opts.Cluster.Port != 6222 || len(opts.Routes) != 3:
		t.Errorf("cluster %q port %d routes %v", opts.Cluster.Name, opts.Cluster.Port, opts.Routes)
	case opts.MaxPayload < 8<<20:
		t.Errorf("max_payload %d: frames need 8 MB", opts.MaxPayload)
	case opts.SystemAccount != "SYS":
		t.Errorf("system account %q", opts.SystemAccount)
	}
	found := false
	for _, u := range opts.Users {
		if u.Username == "vigil" && u.Password == "p1" && u.Account != nil && u.Account.Name == "VIGIL" {
			found = true
		}
	}
	if !found {
		t.Errorf("no user vigil (password from VIGIL_NATS_PASSWORD) in account VIGIL")
	}
	// The options start a real server: the file is not just parseable.
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Routes, opts.Cluster, opts.NoLog, opts.NoSigs = nil, server.ClusterOpts{}, true, true // a lone node
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("server from nats.conf: %v", err)
	}
	s.Start()
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server from nats.conf did not start")
	}
	if !s.JetStreamEnabled() {
		t.Fatal("JetStream not running")
	}
}

// TestVigilConfig: deploy/vigil.yaml is valid, points at the three nodes and asks for replicas 3.
func TestVigilConfig(t *testing.T) {
	c, src, err := config.Load("vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Annotate(c.Validate(), nil); err != nil {
		t.Fatal(err)
	}
	if c.JetStream.Replicas != 3 || len(strings.Split(c.NATS.URL, ",")) != 3 || c.NATS.Password != "" || c.NATS.User != "vigil" {
		t.Fatalf("nats %+v jetstream %+v (password must come from the environment)", c.NATS, c.JetStream)
	}
	if c.Metrics.Addr == "" || !strings.HasSuffix(c.Metrics.Addr, ":9090") {
		t.Fatalf("metrics.addr %q: the manifests scrape :9090", c.Metrics.Addr)
	}
	if c.Sink.Durable != "vigil-sink" {
		t.Fatalf("sink.durable %q: autoscale.yaml watches vigil-sink", c.Sink.Durable)
	}
}

func loadYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// TestCompose checks deploy/compose.yaml: a 3-node NATS cluster with health checks on the pinned
// nats image, every Vigil role from the one image built by deploy/Dockerfile as uid 10001, the
// files it mounts present, passwords only from the environment.
func TestCompose(t *testing.T) {
	docs := loadYAML(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	services, _ := docs[0]["services"].(map[string]any)
	natsImage := "nats:" + natsServerVersion(t) + "-alpine"
	roles := map[string]bool{}
	hostPorts := map[string]string{}
	for name, svc := range services {
		image := str(get(svc, "image"))
		for _, v := range get(svc, "volumes").([]any) {
			src := strings.Split(str(v), ":")[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
		if ports, ok := get(svc, "ports").([]any); ok {
			for _, p := range ports {
				host := strings.Split(str(p), ":")[0]
				if other, dup := hostPorts[host]; dup {
					t.Errorf("host port %s published by %s and %s", host, name, other)
				}
				hostPorts[host] = name
			}
		}
		env, _ := get(svc, "environment").(map[string]any)
		for k, v := range env {
			if strings.Contains(k, "PASSWORD") && !strings.HasPrefix(str(v), "${") {
				t.Errorf("%s: %s is written into the file, not taken from the environment", name, k)
			}
		}
		if strings.HasPrefix(name, "nats-") {
			if image != natsImage {
				t.Errorf("%s image %q, want %q (go.mod's nats-server)", name, image, natsImage)
			}
			if get(svc, "healthcheck", "test") == nil || str(get(env, "NATS_SERVER_NAME")) != name {
				t.Errorf("%s: health check or server name missing", name)
			}
			continue
		}
		cmd, _ := get(svc, "command").([]any)
		if len(cmd) == 0 {
			t.Errorf("%s has no command", name)
			continue
		}
		roles[str(cmd[0])] = true
		if !strings.HasPrefix(image, "vigil:") || str(get(svc, "build", "dockerfile")) != "deploy/Dockerfile" || str(get(svc, "build", "context")) != ".." {
			t.Errorf("%s: image %q built from %v", name, image, get(svc, "build"))
		}
		if str(get(svc, "user")) != "10001:10001" || get(svc, "read_only") != true {
			t.Errorf("%s: user %v read_only %v", name, get(svc, "user"), get(svc, "read_only"))
		}
		for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
			if str(get(svc, "depends_on", n, "condition")) != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy", name, n)
			}
		}
	}
	for _, r := range []string{"ingest", "analyze", "track", "sink", "serve"} {
		if !roles[r] {
			t.Errorf("no service runs vigil %s", r)
		}
	}
	if n, _ := get(services, "analyze", "deploy", "replicas").(int); n < 2 {
		t.Errorf("analyze replicas %v, want at least 2", get(services, "analyze", "deploy", "replicas"))
	}
}

// TestKubernetes checks the manifests kustomization.yaml assembles.
func TestKubernetes(t *testing.T) {
	kust := loadYAML(t, "kustomization.yaml")[0]
	var docs []map[string]any
	for _, r := range kust["resources"].([]any) {
		docs = append(docs, loadYAML(t, str(r))...)
	}
	configMaps := map[string]bool{}
	for _, g := range kust["configMapGenerator"].([]any) {
		configMaps[str(get(g, "name"))] = true
		for _, f := range get(g, "files").([]any) {
			file := str(f)
			if i := strings.Index(file, "="); i >= 0 {
				file = file[i+1:]
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("configMapGenerator %s: %v", get(g, "name"), err)
			}
		}
	}
	natsImage := "nats:" + natsServerVersion(t) + "-alpine"
	workloads := map[string]string{}
	claims := map[string]bool{}
	metrics := exportedMetrics(t)
	for _, d := range docs {
		kind, name := str(d["kind"]), str(get(d, "metadata", "name"))
		if str(d["apiVersion"]) == "" || kind == "" || name == "" {
			t.Errorf("document without apiVersion, kind or metadata.name: %v", d)
			continue
		}
		switch kind {
		case "PersistentVolumeClaim":
			claims[name] = true
		case "Deployment", "StatefulSet":
			workloads[name] = kind
			checkWorkload(t, d, natsImage, configMaps)
		case "ScaledObject":
			target := str(get(d, "spec", "scaleTargetRef", "name"))
			if target == "" {
				t.Errorf("ScaledObject %s has no target", name)
			}
			defer func() {
				if workloads[target] != "Deployment" {
					t.Errorf("ScaledObject %s scales %q, not a Deployment here", name, target)
				}
			}()
			for _, tr := range get(d, "spec", "triggers").([]any) {
				switch str(get(tr, "type")) {
				case "prometheus":
					q := str(get(tr, "metadata", "query"))
					for _, m := range regexp.MustCompile(`vigil_[a-z_]+`).FindAllString(q, -1) {
						if !metrics[m] {
							t.Errorf("ScaledObject %s queries %s, which no Vigil role exports", name, m)
						}
					}
					if get(tr, "metadata", "threshold") == nil || get(tr, "metadata", "serverAddress") == nil {
						t.Errorf("ScaledObject %s: prometheus trigger without threshold or serverAddress", name)
					}
				case "nats-jetstream":
					if str(get(tr, "metadata", "stream")) != bus.ResultsStream || str(get(tr, "metadata", "consumer")) != config.Default().Sink.Durable ||
						str(get(tr, "metadata", "account")) != "VIGIL" {
						t.Errorf("ScaledObject %s watches %v", name, get(tr, "metadata"))
					}
				default:
					t.Errorf("ScaledObject %s: trigger %v", name, get(tr, "type"))
				}
			}
		}
	}
	for _, w := range []string{"nats", "ingest", "analyze", "track", "sink", "serve"} {
		if workloads[w] == "" {
			t.Errorf("no workload %s", w)
		}
	}
	for _, d := range docs {
		for _, v := range asList(get(d, "spec", "template", "spec", "volumes")) {
			if c := str(get(v, "persistentVolumeClaim", "claimName")); c != "" && !claims[c] {
				t.Errorf("%s mounts claim %s, which is not defined", get(d, "metadata", "name"), c)
			}
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func checkWorkload(t *testing.T, d map[string]any, natsImage string, configMaps map[string]bool) {
	t.Helper()
	name := str(get(d, "metadata", "name"))
	pod := get(d, "spec", "template", "spec")
	labels := get(d, "spec", "template", "metadata", "labels")
	for k, v := range get(d, "spec", "selector", "matchLabels").(map[string]any) {
		if str(get(labels, k)) != str(v) {
			t.Errorf("%s: selector %s=%v does not match the pod labels", name, k, v)
		}
	}
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: pods may run as root", name)
	}
	for _, c := range asList(get(pod, "containers")) {
		image := str(get(c, "image"))
		switch {
		case name == "nats":
			if image != natsImage {
				t.Errorf("nats image %q, want %q", image, natsImage)
			}
		case image != "vigil:dev":
			t.Errorf("%s image %q", name, image)
		default:
			if u, _ := get(pod, "securityContext", "runAsUser").(int); u != 10001 {
				t.Errorf("%s runs as uid %v, the image's user is 10001", name, u)
			}
			if args := asList(get(c, "args")); len(args) == 0 || str(args[0]) != name {
				t.Errorf("%s runs %v", name, args)
			}
		}
		if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("%s: container security context %v", name, get(c, "securityContext"))
		}
		for _, e := range asList(get(c, "env")) {
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil && str(get(ref, "name")) != "vigil-nats" {
				t.Errorf("%s reads secret %v", name, ref)
			}
			if strings.Contains(str(get(e, "name")), "PASSWORD") && get(e, "value") != nil {
				t.Errorf("%s: %s written into the manifest", name, get(e, "name"))
			}
		}
		ports := map[string]bool{}
		for _, p := range asList(get(c, "ports")) {
			ports[str(get(p, "name"))] = true
		}
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			if p := str(get(c, probe, "httpGet", "port")); p != "" && !ports[p] {
				t.Errorf("%s %s uses port %q the container does not name", name, probe, p)
			}
		}
	}
	for _, v := range asList(get(pod, "volumes")) {
		if cm := str(get(v, "configMap", "name")); cm != "" && !configMaps[cm] {
			t.Errorf("%s mounts ConfigMap %s, which kustomization.yaml does not generate", name, cm)
		}
	}
}

// exportedMetrics collects the metric names the code registers (cmd/vigil/cli and sink sources).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, glob := range []string{"../cmd/vigil/cli/*.go", "../sink/*.go"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`Name: "(vigil_[a-z_]+)"`).FindAllSubmatch(b, -1) {
				out[string(m[1])] = true
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d metric names in the sources", len(out))
	}
	return out
}

// TestDockerfile: multi-stage, models fetched and verified at build, non-root uid 10001, the
// ports the manifests use exposed.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"AS build", "go run ./cmd/fetchdeps", "--uid 10001", "USER 10001:10001", "EXPOSE 9090 8080 4222",
		"ENTRYPOINT [\"/usr/local/bin/vigil\"]", "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(s, "\nFROM ") < 1 || !strings.HasPrefix(strings.TrimSpace(s[strings.Index(s, "FROM"):]), "FROM golang:") {
		t.Errorf("not a multi-stage build from golang")
	}
}
