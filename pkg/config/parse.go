package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// maxNodes bounds the YAML nodes a document may expand to (aliases included), so a small file
// cannot make the parser do unbounded work.
const maxNodes = 100_000

// Source remembers where each key of a parsed file was, so that later errors (from Validate,
// or from flags a role checks itself) can point at the file's line.
type Source struct {
	// File is the name errors use for the file.
	File string
	// lines maps key paths ("analyze.max_batch", "ingest.streams[0].source") to their line.
	lines map[string]int
}

// Line returns the line of path in the file, or 0 when the file did not set it. A path inside
// a set parent (a list element's field) falls back to the parent's line.
func (s *Source) Line(path string) int {
	if s == nil {
		return 0
	}
	for p := path; p != ""; {
		if l, ok := s.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// Annotate adds the file and line to every *FieldError in err (a single error or an
// errors.Join) whose path the file set, except paths in skip (values that came from flags or the
// environment instead). Other errors pass through unchanged.
func (s *Source) Annotate(err error, skip map[string]bool) error {
	if err == nil || s == nil {
		return err
	}
	list := flatten(err)
	out := make([]error, 0, len(list))
	for _, e := range list {
		fe, ok := e.(*FieldError)
		if ok && fe.File == "" && !skip[fe.Path] {
			if l := s.Line(fe.Path); l > 0 {
				c := *fe
				c.File, c.Line = s.File, l
				e = &c
			}
		}
		out = append(out, e)
	}
	if len(out) == 1 {
		return out[0]
	}
	return errors.Join(out...)
}

// flatten lists the errors inside nested errors.Join results.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Load reads the YAML file at path over Default(). It does not Validate: flags and the
// environment may still change values.
func Load(path string) (Config, *Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse reads YAML data over Default(); name labels errors. Unknown keys, duplicate keys and
// values of the wrong type are errors (*FieldError, with the line). It does not Validate.
func Parse(name string, data []byte) (Config, *Source, error) {
	cfg := Default()
	src := &Source{File: name, lines: map[string]int{}}
	if len(data) > MaxFileSize {
		return Config{}, nil, &FieldError{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, src, nil // an empty file: defaults
		}
		return Config{}, nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return Config{}, nil, yamlError(name, err)
		}
		return Config{}, nil, &FieldError{File: name, Line: line, Msg: "a second YAML document (---): put everything in one"}
	}
	d := decoder{file: name, src: src, budget: maxNodes}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return cfg, src, nil
		}
		root = root.Content[0]
	}
	if err := d.value(root, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return Config{}, nil, err
	}
	return cfg, src, nil
}

// yamlError turns a yaml.v3 syntax error into a FieldError with the file and line.
func yamlError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &FieldError{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

type decoder struct {
	file   string
	src    *Source
	budget int
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) error {
	return &FieldError{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

var (
	durationType     = reflect.TypeOf(time.Duration(0))
	unmarshalerType  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	byteSizeTypeName = reflect.TypeOf(ByteSize(0)).Name()
)

// value decodes n into v, the field at path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) error {
	d.budget--
	if d.budget < 0 {
		return d.fail(n, path, "document too large or too deeply aliased (more than %d nodes)", maxNodes)
	}
	for depth := 0; n.Kind == yaml.AliasNode; depth++ {
		if n.Alias == nil || depth > 100 {
			return d.fail(n, path, "unresolvable alias")
		}
		n = n.Alias
	}
	if path != "" {
		if _, ok := d.src.lines[path]; !ok {
			d.src.lines[path] = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // "key:" with no value keeps the default
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return d.fail(n, path, "%s", cleanYAMLMsg(err))
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.fail(n, path, "want a list, got %s", describe(n))
		}
		if len(n.Content) == 0 {
			v.Set(reflect.Zero(v.Type())) // [] is the same as absent
			return nil
		}
		out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := d.value(item, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
			out = reflect.Append(out, elem)
		}
		v.Set(out)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return d.fail(n, path, "want %s, got %s", kindName(v.Type()), describe(n))
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		return d.fail(n, path, "want %s, got %q", kindName(v.Type()), n.Value)
	}
	if v.Kind() == reflect.Float64 && strings.HasPrefix(strings.TrimLeft(strings.ToLower(n.Value), "+-"), ".") {
		// YAML's .inf and .nan are floats too; no Vigil setting wants them.
		if f := tmp.Elem().Float(); f != f || f > 1e300 || f < -1e300 {
			return d.fail(n, path, "want a finite number, got %q", n.Value)
		}
	}
	v.Set(tmp.Elem())
	return nil
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		what := "a mapping of keys"
		if path == "" {
			what = "a mapping of sections (nats:, ingest:, ...)"
		}
		return d.fail(n, path, "want %s, got %s", what, describe(n))
	}
	fields := map[string]int{}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.fail(k, path, "a key must be a plain name, got %s", describe(k))
		}
		key := k.Value
		child := key
		if path != "" {
			child = path + "." + key
		}
		if first, dup := seen[key]; dup {
			return d.fail(k, child, "set twice (first at line %d)", first)
		}
		seen[key] = k.Line
		idx, ok := fields[key]
		if !ok {
			return d.fail(k, child, "unknown key%s", suggest(key, fields, path))
		}
		d.src.lines[child] = k.Line
		if err := d.value(val, v.Field(idx), child); err != nil {
			return err
		}
	}
	return nil
}

// suggest lists the keys valid where an unknown one was found, nearest first.
func suggest(key string, fields map[string]int, path string) string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := editDistance(key, names[i]), editDistance(key, names[j])
		if di != dj {
			return di < dj
		}
		return names[i] < names[j]
	})
	where := "here"
	if path != "" {
		where = "in " + path
	}
	hint := ""
	if len(names) > 0 && editDistance(key, names[0]) <= max(2, len(key)/3) {
		hint = fmt.Sprintf(" (did you mean %q?)", names[0])
	}
	sort.Strings(names)
	return fmt.Sprintf("%s; valid keys %s: %s", hint, where, strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 500ms, 2s or 24h"
	case t.Name() == byteSizeTypeName:
		return "a size such as 512MiB"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

func cleanYAMLMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	return strings.Join(strings.Fields(msg), " ")
}

//go:embed example.yaml
var example []byte

// Example returns a commented configuration file that sets every key (to its default, except
// the example streams), as `vigil config example` prints it.
func Example() []byte { return bytes.Clone(example) }

// Marshal renders c as YAML. With redact, secrets (password, token) are replaced by "<redacted>"
// and the password of sink.events_dsn by "xxxxx".
func (c Config) Marshal(redact bool) ([]byte, error) {
	if redact {
		if c.NATS.Password != "" {
			c.NATS.Password = "<redacted>"
		}
		if c.NATS.Token != "" {
			c.NATS.Token = "<redacted>"
		}
		if c.Sink.EventsDSN != "" {
			c.Sink.EventsDSN = RedactDSN(c.Sink.EventsDSN)
		}
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}
