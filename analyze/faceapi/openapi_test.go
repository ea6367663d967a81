package faceapi

import (
	"testing"

	"github.com/vigil-video/vigil/analyze/gallery"
)

// TestOpenAPIAnnotateHeader: /v1/annotate documents its X-Faces header, and the enrollment
// routes their optional box field.
func TestOpenAPIAnnotateHeader(t *testing.T) {
	a, err := New(Config{Engine: failEngine{}, Store: &gallery.Store{}, Gallery: &gallery.Gallery{}})
	if err != nil {
		t.Fatal(err)
	}
	doc := a.doc()
	ok := doc.Paths["/v1/annotate"]["post"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)
	h, _ := ok["headers"].(map[string]any)["X-Faces"].(map[string]any)
	if h == nil || h["schema"].(map[string]any)["type"] != "integer" {
		t.Fatalf("annotate's 200: %v", ok)
	}
	body := doc.Paths["/v1/identities"]["post"].(map[string]any)["requestBody"].(map[string]any)["content"].(map[string]any)
	props := body["multipart/form-data"].(map[string]any)["schema"].(map[string]any)["properties"].(map[string]any)
	if props["box"] == nil || props["name"] == nil {
		t.Fatalf("enrollment form: %v", props)
	}
}
