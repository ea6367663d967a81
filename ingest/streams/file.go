package streams

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// File limits.
const (
	// MaxFileBytes bounds a streams file.
	MaxFileBytes = 1 << 20
	// MaxFileStreams bounds the streams one file may list.
	MaxFileStreams = 1000
	// maxYAMLNodes bounds the YAML nodes a file may expand to, aliases included, so a small file
	// cannot make the parser do unbounded work.
	maxYAMLNodes = 100_000
)

// LoadFile reads and parses a streams file (see ParseFile); errors name the file.
func LoadFile(path string, check SourceChecker) ([]Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("streams file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("streams file %s: %w", path, err)
	}
	specs, err := ParseFile(data, check)
	if err != nil {
		return nil, fmt.Errorf("streams file %s: %w", path, err)
	}
	return specs, nil
}

// ParseFile parses a streams file: one YAML document holding a "streams" list of stream
// configurations (Spec's keys), for example
//
//	streams:
//	  - name: lobby
//	    source: rtsp://user:password@10.0.0.7/stream1
//	    fps: 5
//	    max_width: 1280
//	    max_height: 720
//	    jpeg_quality: 80
//	    node: edge-1          # which ingest runs it; omitted: see the package comment
//	  - name: door
//	    source: push          # frames POSTed to /v1/streams/door/frames
//	  - name: archive
//	    source: /data/2024-05-01.mp4
//	    enabled: false
//
// Defaults are set and every stream is validated (check checks the sources' form). Unknown keys,
// duplicate keys or stream names, a second document and more than MaxFileStreams streams are
// refused. Every error wraps ErrInvalid and names the line and the stream.
func ParseFile(data []byte, check SourceChecker) ([]Spec, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty file: want a \"streams:\" list", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: YAML: %v", ErrInvalid, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document (a second \"---\"?)", ErrInvalid)
	}
	budget := maxYAMLNodes
	if !countNodes(&doc, &budget) {
		return nil, fmt.Errorf("%w: the YAML expands to more than %d nodes (aliases?)", ErrInvalid, maxYAMLNodes)
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping with a \"streams\" list", ErrInvalid, root.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "streams" {
			return nil, fmt.Errorf("%w: line %d: unknown key %q (the file holds a \"streams\" list)", ErrInvalid, k.Line, truncate(k.Value, 64))
		}
		if list != nil {
			return nil, fmt.Errorf("%w: line %d: \"streams\" given twice", ErrInvalid, k.Line)
		}
		list = deref(root.Content[i+1])
	}
	if list == nil {
		return nil, fmt.Errorf("%w: no \"streams\" list", ErrInvalid)
	}
	if list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil // "streams:" with nothing: an empty list
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%w: line %d: \"streams\" must be a list", ErrInvalid, list.Line)
	}
	if len(list.Content) > MaxFileStreams {
		return nil, fmt.Errorf("%w: %d streams (at most %d)", ErrInvalid, len(list.Content), MaxFileStreams)
	}
	out := make([]Spec, 0, len(list.Content))
	lines := map[string]int{}
	for i, item := range list.Content {
		item = deref(item)
		where := fmt.Sprintf("line %d: streams[%d]", item.Line, i)
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%w: %s: want a mapping (name:, source:, ...)", ErrInvalid, where)
		}
		seen := map[string]bool{}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k := item.Content[j]
			if !specKeys[k.Value] {
				return nil, fmt.Errorf("%w: line %d: streams[%d]: unknown key %q (name, source, node, enabled, fps, max_width, max_height, jpeg_quality, loop, realtime)",
					ErrInvalid, k.Line, i, truncate(k.Value, 64))
			}
			if seen[k.Value] {
				return nil, fmt.Errorf("%w: line %d: streams[%d]: key %q given twice", ErrInvalid, k.Line, i, k.Value)
			}
			seen[k.Value] = true
		}
		var d specDoc
		if err := item.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
		}
		s := d.spec()
		s.SetDefaults()
		if err := s.Validate(check); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if l, dup := lines[s.Name]; dup {
			return nil, fmt.Errorf("%w: %s: stream %q is already defined on line %d", ErrInvalid, where, s.Name, l)
		}
		lines[s.Name] = item.Line
		out = append(out, s)
	}
	return out, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// countNodes counts n's nodes, following aliases, against budget; false when it runs out.
func countNodes(n *yaml.Node, budget *int) bool {
	if n == nil {
		return true
	}
	if *budget--; *budget < 0 {
		return false
	}
	if n.Kind == yaml.AliasNode {
		return countNodes(n.Alias, budget)
	}
	for _, c := range n.Content {
		if !countNodes(c, budget) {
			return false
		}
	}
	return true
}
