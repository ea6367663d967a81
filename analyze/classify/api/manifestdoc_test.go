package api

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-video/vigil/analyze/classify/manifest"
)

// TestManifestSchema: the OpenAPI schemas of the manifest document exactly the JSON fields of
// manifest.Manifest and its parts, and POST /v1/classifiers points to it.
func TestManifestSchema(t *testing.T) {
	s := manifestSchemas()
	for name, v := range map[string]any{"ClassifierManifest": manifest.Manifest{}, "ClassifierRegion": manifest.Region{},
		"ClassifierFace": manifest.Face{}, "ClassifierInput": manifest.Input{}, "ClassifierOutput": manifest.Output{},
		"ClassifierTrained": manifest.Trained{}} {
		props := s[name].(map[string]any)["properties"].(map[string]any)
		typ := reflect.TypeOf(v)
		fields := map[string]bool{}
		for i := range typ.NumField() {
			tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields[tag] = true
			if props[tag] == nil {
				t.Errorf("schema %s lacks %q", name, tag)
			}
		}
		for p := range props {
			if !fields[p] {
				t.Errorf("schema %s documents %q, which %T lacks", name, p, v)
			}
		}
	}
	doc := openAPI(false)
	if doc.Schemas["ClassifierManifest"] == nil || !strings.Contains(doc.Paths["/v1/classifiers"]["post"].(map[string]any)["description"].(string), "ClassifierManifest") {
		t.Fatal("the API document does not describe the manifest")
	}
}
