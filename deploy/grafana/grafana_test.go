package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

type dashboardDoc struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

var metricRE = regexp.MustCompile(`\bvigil_[a-z0-9_]+`)

func load(t *testing.T) dashboardDoc {
	t.Helper()
	var d dashboardDoc
	if err := json.Unmarshal(Dashboard(), &d); err != nil {
		t.Fatalf("vigil.json does not parse: %v", err)
	}
	return d
}

// TestDashboard: the JSON parses; every panel but rows has a query on the $datasource; ids are
// unique; panels fit the 24-column grid without overlapping; queries are balanced and use only
// the dashboard's variables.
func TestDashboard(t *testing.T) {
	d := load(t)
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("title %q uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	if !slices.Contains(vars, "datasource") || !slices.Contains(vars, "stream") {
		t.Fatalf("variables %v, want datasource and stream", vars)
	}
	ids := map[int]bool{}
	var boxes []panel
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, b := range boxes {
			o := b.GridPos
			if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", p.Title, b.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %d %q: no title or not on ${datasource}", p.ID, p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			e := tg.Expr
			if strings.TrimSpace(e) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty query or refId", p.Title)
			}
			for _, pair := range []string{"()", "{}", "[]"} {
				if strings.Count(e, pair[:1]) != strings.Count(e, pair[1:]) {
					t.Errorf("panel %q: unbalanced %s in %s", p.Title, pair, e)
				}
			}
			if strings.Count(e, `"`)%2 != 0 {
				t.Errorf("panel %q: unbalanced quotes in %s", p.Title, e)
			}
			if strings.Contains(strings.ReplaceAll(e, `stream=~"$stream"`, ""), "$") {
				t.Errorf("panel %q: unknown variable in %s", p.Title, e)
			}
			if len(metricRE.FindAllString(e, -1)) == 0 {
				t.Errorf("panel %q: query names no vigil metric: %s", p.Title, e)
			}
		}
	}
}

// family maps a series name to its family: histograms' _bucket, _sum and _count series.
func family(name string, known map[string]Metric) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := known[base]; ok {
				return base
			}
		}
	}
	return name
}

// TestMetrics: every metric a query names is in Metrics(), every listed metric is charted, and
// every metric not marked Proposed is exported somewhere in the module's Go code (a renamed
// metric fails here, not silently on the dashboard). Proposed metrics not yet exported are
// logged.
func TestMetrics(t *testing.T) {
	known := map[string]Metric{}
	for _, m := range Metrics() {
		known[m.Name] = m
	}
	used := map[string]bool{}
	for _, p := range load(t).Panels {
		for _, tg := range p.Targets {
			for _, name := range metricRE.FindAllString(tg.Expr, -1) {
				f := family(name, known)
				if _, ok := known[f]; !ok {
					t.Errorf("panel %q charts %s, which Metrics() does not list", p.Title, name)
				}
				used[f] = true
			}
		}
	}
	for name := range known {
		if !used[name] {
			t.Errorf("Metrics() lists %s, which no panel charts", name)
		}
	}
	source := moduleSource(t)
	for _, m := range Metrics() {
		exported := strings.Contains(source, `"`+m.Name+`"`)
		switch {
		case !m.Proposed && !exported:
			t.Errorf("%s (owner %s) is exported by no Go code: renamed? update vigil.json and Metrics()", m.Name, m.Owner)
		case m.Proposed && exported:
			t.Logf("%s is now exported: clear Proposed", m.Name)
		case m.Proposed:
			t.Logf("proposed, not exported yet: %s%v (owner %s)", m.Name, m.Labels, m.Owner)
		}
	}
}

// moduleSource concatenates the module's non-test Go files outside this package.
func moduleSource(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above %s", wd)
	}
	var b strings.Builder
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if name := e.Name(); path != root && (strings.HasPrefix(name, ".") || name == "build" || name == "bin" || name == "testdata" || path == wd) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
