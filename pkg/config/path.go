package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// field finds the scalar field at a dotted key path ("analyze.max_batch").
func (c *Config) field(path string) (reflect.Value, error) {
	v := reflect.ValueOf(c).Elem()
	for _, key := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, fmt.Errorf("config: %s: %q is not a section", path, key)
		}
		t := v.Type()
		found := false
		for i := 0; i < t.NumField(); i++ {
			if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == key {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, fmt.Errorf("config: unknown key %s", path)
		}
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Slice:
		return reflect.Value{}, fmt.Errorf("config: %s is not a single value", path)
	}
	return v, nil
}

// Get returns the value at a dotted key path as text a flag accepts: durations as 1m30s, sizes
// as 1GiB, numbers in their shortest form.
func (c *Config) Get(path string) (string, error) {
	v, err := c.field(path)
	if err != nil {
		return "", err
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String(), nil
	case ByteSize:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return fmt.Sprint(v.Interface()), nil
}

// Set parses value (as a YAML scalar: "10ms", "1GiB", "true", "0.6") into the field at a
// dotted key path.
func (c *Config) Set(path, value string) error {
	v, err := c.field(path)
	if err != nil {
		return err
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	if v.Kind() == reflect.String {
		v.SetString(value)
		return nil
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		return &FieldError{Path: path, Msg: fmt.Sprintf("want %s, got %q", kindName(v.Type()), value)}
	}
	v.Set(tmp.Elem())
	return nil
}

// Has reports whether the file set the key at path.
func (s *Source) Has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.lines[path]
	return ok
}
