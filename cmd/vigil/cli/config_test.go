package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-video/vigil/pkg/config"
	"github.com/vigil-video/vigil/pkg/testenv"
)

// run runs the command line in-process with exactly env as its environment (no VIGIL_DEPS
// default) and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Main(ctx, Env{Args: args, Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }, Version: "test"})
	return code, stdout.String(), stderr.String()
}

// effective parses what --check-config printed.
func effective(t *testing.T, out string) config.Config {
	t.Helper()
	c, _, err := config.Parse("check-config output", []byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigPrecedence: defaults, then the file, then VIGIL_* variables, then flags.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "vigil.yaml", "analyze:\n  max_batch: 8\n  max_wait: 20ms\nnats:\n  url: nats://file:4222\njetstream:\n  replicas: 3\nlog:\n  level: debug\n")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		batch    int
		wait     time.Duration
		url      string
		replicas int
	}{
		{"defaults", nil, nil, 4, 10 * time.Millisecond, "nats://127.0.0.1:4222", 1},
		{"file", nil, []string{"--config", file}, 8, 20 * time.Millisecond, "nats://file:4222", 3},
		{"file from VIGIL_CONFIG", map[string]string{"VIGIL_CONFIG": file}, nil, 8, 20 * time.Millisecond, "nats://file:4222", 3},
		{"environment over file", map[string]string{"VIGIL_MAX_BATCH": "6", "VIGIL_NATS_URL": "nats://env:4222"}, []string{"--config=" + file}, 6, 20 * time.Millisecond, "nats://env:4222", 3},
		{"flags over environment", map[string]string{"VIGIL_MAX_BATCH": "6", "VIGIL_JS_REPLICAS": "5"}, []string{"--config", file, "--max-batch", "5", "--nats-url", "nats://flag:4222", "--js-replicas", "1"}, 5, 20 * time.Millisecond, "nats://flag:4222", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"analyze"}, tc.args...)
			code, out, errOut := runCLI(t, tc.env, append(args, "--check-config")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			c := effective(t, out)
			if c.Analyze.MaxBatch != tc.batch || c.Analyze.MaxWait != tc.wait || c.NATS.URL != tc.url || c.JetStream.Replicas != tc.replicas {
				t.Fatalf("max_batch %d max_wait %s url %s replicas %d", c.Analyze.MaxBatch, c.Analyze.MaxWait, c.NATS.URL, c.JetStream.Replicas)
			}
		})
	}
}

// TestConfigErrors: problems are reported with the file line when the file gave the value, and
// without it when a flag did; the process exits non-zero.
func TestConfigErrors(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "analyze:\n  max_batch: 0\nsink:\n  deliver: latest\n")
	code, _, errOut := runCLI(t, nil, "config", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml:2: analyze.max_batch: 0 is outside 1..256") ||
		!strings.Contains(errOut, `bad.yaml:4: sink.deliver: "latest" is not one of all, new`) {
		t.Fatalf("config check: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "analyze", "--config", bad, "--check-config")
	if code != 1 || !strings.Contains(errOut, "bad.yaml:2: analyze.max_batch") {
		t.Fatalf("analyze --check-config: exit %d\n%s", code, errOut)
	}
	good := writeFile(t, "good.yaml", "analyze:\n  max_batch: 8\n")
	code, _, errOut = runCLI(t, nil, "analyze", "--config", good, "--max-batch", "0", "--check-config")
	if code != 1 || !strings.Contains(errOut, "analyze.max_batch: 0 is outside") || strings.Contains(errOut, "good.yaml:") {
		t.Fatalf("a flag's bad value blamed on the file: exit %d\n%s", code, errOut)
	}
	heads := writeFile(t, "heads.yaml", "analyze:\n  heads: age,beard\n")
	code, _, errOut = runCLI(t, nil, "config", "check", heads)
	if code != 1 || !strings.Contains(errOut, "heads.yaml:2: analyze.heads:") {
		t.Fatalf("unknown head: exit %d\n%s", code, errOut)
	}
	unknown := writeFile(t, "unknown.yaml", "sink:\n  jsonl_apend: true\n")
	code, _, errOut = runCLI(t, nil, "sink", "--config", unknown)
	if code != 1 || !strings.Contains(errOut, `unknown.yaml:2: sink.jsonl_apend: unknown key (did you mean "jsonl_append"?)`) {
		t.Fatalf("unknown key: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "sink", "--config", filepath.Join(t.TempDir(), "absent.yaml"))
	if code != 1 || !strings.Contains(errOut, "absent.yaml") {
		t.Fatalf("missing file: exit %d\n%s", code, errOut)
	}
	code, _, _ = runCLI(t, map[string]string{"VIGIL_MAX_BATCH": "many"}, "analyze", "--check-config")
	if code != 2 {
		t.Fatalf("bad environment value: exit %d, want 2 (usage)", code)
	}
}

// TestConfigExampleAndShow: `vigil config example` is a valid file; `show` merges a file with the
// defaults and hides secrets.
func TestConfigExampleAndShow(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "config", "example")
	if code != 0 {
		t.Fatal(errOut)
	}
	ex := writeFile(t, "example.yaml", out)
	if code, _, errOut := runCLI(t, nil, "config", "check", ex); code != 0 {
		t.Fatalf("the example does not check: %s", errOut)
	}
	f := writeFile(t, "secret.yaml", "nats:\n  user: u\n  password: hunter2\n")
	code, out, errOut = runCLI(t, nil, "config", "show", f)
	if code != 0 || strings.Contains(out, "hunter2") || effective(t, out).Analyze.MaxBatch != 4 {
		t.Fatalf("show: exit %d %s\n%s", code, errOut, out)
	}
	if code, _, _ := runCLI(t, nil, "config"); code != 2 {
		t.Fatalf("config without a subcommand: exit %d", code)
	}
}

// TestConfigStreams: ingest streams come from the file (names derived where missing, fps per
// stream), and --source replaces them.
func TestConfigStreams(t *testing.T) {
	f := writeFile(t, "streams.yaml", "ingest:\n  fps: 3\n  streams:\n    - {source: /videos/lobby.mp4}\n    - {name: lobby, source: rtsp://cam/1, fps: 2}\n")
	var inf ingestFlags
	inf.fps, inf.maxWidth, inf.maxHeight, inf.quality = 3, 1280, 720, 80
	c, _, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := inf.streamConfigs(c.Ingest.Streams)
	if err != nil {
		t.Fatal(err)
	}
	// The derived name avoids the explicit one.
	if len(got) != 2 || got[0].Name != "lobby-2" || got[0].FPS != 3 || got[1].Name != "lobby" || got[1].FPS != 2 {
		t.Fatalf("%+v", got)
	}
	inf.sources = stringList{"/videos/door.mp4"}
	got, err = inf.streamConfigs(c.Ingest.Streams)
	if err != nil || len(got) != 1 || got[0].Name != "door" {
		t.Fatalf("--source did not replace the file's streams: %+v %v", got, err)
	}
}

// TestDeployCommands runs every command line in deploy/compose.yaml and deploy/k8s through the
// real command line: roles that take --check-config validate their whole effective
// configuration (deploy/vigil.yaml mounted where the manifests mount it, the environment they
// set); the others must know every flag they are given.
func TestDeployCommands(t *testing.T) {
	deploy := filepath.Join(testenv.RepoRoot(t), "deploy")
	type cmdline struct {
		where string
		args  []string
		env   map[string]string
	}
	var lines []cmdline
	placeholder := regexp.MustCompile(`\$\{[^}]*\}|\$\([A-Z_]+\)`)
	fill := func(s string) string {
		s = placeholder.ReplaceAllString(s, "secret")
		return strings.ReplaceAll(s, "/etc/vigil/vigil.yaml", filepath.Join(deploy, "vigil.yaml"))
	}

	var compose struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Image       string            `yaml:"image"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join(deploy, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	for name, svc := range compose.Services {
		if !strings.HasPrefix(svc.Image, "vigil:") {
			continue
		}
		cl := cmdline{where: "compose " + name, env: map[string]string{}}
		for _, a := range svc.Command {
			cl.args = append(cl.args, fill(a))
		}
		for k, v := range svc.Environment {
			cl.env[k] = fill(v)
		}
		lines = append(lines, cl)
	}

	files, _ := filepath.Glob(filepath.Join(deploy, "k8s", "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Kind     string `yaml:"kind"`
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Image string   `yaml:"image"`
								Args  []string `yaml:"args"`
								Env   []struct {
									Name  string `yaml:"name"`
									Value string `yaml:"value"`
								} `yaml:"env"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if dec.Decode(&doc) != nil {
				break
			}
			for _, c := range doc.Spec.Template.Spec.Containers {
				if !strings.HasPrefix(c.Image, "vigil:") {
					continue
				}
				cl := cmdline{where: "k8s " + doc.Metadata.Name, env: map[string]string{}}
				for _, a := range c.Args {
					cl.args = append(cl.args, fill(a))
				}
				for _, e := range c.Env {
					v := e.Value
					if v == "" {
						v = "secret" // valueFrom
					}
					cl.env[e.Name] = fill(v)
				}
				lines = append(lines, cl)
			}
		}
	}
	if len(lines) < 10 {
		t.Fatalf("found %d vigil command lines in deploy/", len(lines))
	}
	for _, cl := range lines {
		switch cl.args[0] {
		case "ingest", "analyze", "sink", "run":
			code, out, errOut := runCLI(t, cl.env, append(cl.args, "--check-config")...)
			if code != 0 || !strings.Contains(out, "configuration OK") {
				t.Errorf("%s: vigil %s --check-config: exit %d\n%s", cl.where, strings.Join(cl.args, " "), code, errOut)
				continue
			}
			c := effective(t, out)
			if c.JetStream.Replicas != 3 || !strings.Contains(c.NATS.URL, "nats-") || c.NATS.Password == "" {
				t.Errorf("%s: effective nats %+v replicas %d", cl.where, c.NATS, c.JetStream.Replicas)
			}
		default:
			code, _, usage := runCLI(t, cl.env, cl.args[0], "--help")
			if code != 0 {
				t.Errorf("%s: vigil %s --help: exit %d", cl.where, cl.args[0], code)
				continue
			}
			for _, a := range cl.args[1:] {
				if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(usage, "--"+strings.SplitN(name, "=", 2)[0]+"\n") {
					t.Errorf("%s: vigil %s has no flag %s", cl.where, cl.args[0], a)
				}
			}
			for k := range cl.env {
				flagName := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "VIGIL_")), "_", "-")
				if strings.HasPrefix(k, "VIGIL_") && k != "VIGIL_NATS_PASSWORD" && !strings.Contains(usage, flagName+"\n") {
					t.Errorf("%s: vigil %s ignores %s (no %s flag)", cl.where, cl.args[0], k, flagName)
				}
			}
		}
	}
}

// TestSecretsNeverShown: a password from the file or the environment reaches the configuration
// but not --help or --check-config.
func TestSecretsNeverShown(t *testing.T) {
	f := writeFile(t, "s.yaml", "nats:\n  user: vigil\n  password: from-file-pw\n")
	code, _, usage := runCLI(t, nil, "sink", "--config", f, "--help")
	if code != 0 || strings.Contains(usage, "from-file-pw") {
		t.Fatalf("--help shows the password (exit %d):\n%s", code, usage)
	}
	code, out, errOut := runCLI(t, map[string]string{"VIGIL_NATS_TOKEN": "env-token"}, "sink", "--config", f, "--check-config")
	if code != 1 || !strings.Contains(errOut, "more than one of user/password, token") || strings.Contains(errOut+out, "env-token") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "sink", "--config", f, "--check-config")
	if code != 0 || strings.Contains(out, "from-file-pw") || !strings.Contains(out, "<redacted>") {
		t.Fatalf("--check-config shows the password (exit %d):\n%s", code, out)
	}
}
