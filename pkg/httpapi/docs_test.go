package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestDocsShowBodies: the docs page shows each response's body (media type, schema link and
// fields, nested schemas by name, enums), its headers, and a Schemas section with every schema.
func TestDocsShowBodies(t *testing.T) {
	s := &Server{Addr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler), Title: "Test"}
	s.HandleFunc("GET /v1/things", func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, 200, map[string]any{}) })
	s.Describe(Doc{
		Paths: map[string]map[string]any{"/v1/things": {"get": map[string]any{"tags": []any{"things"}, "summary": "List things",
			"responses": map[string]any{
				"200": map[string]any{"description": "the things", "headers": map[string]any{"X-Count": map[string]any{
					"description": "how many things", "schema": map[string]any{"type": "integer"}}},
					"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ThingList"}}}},
				"404": ErrorResponse("no_things"),
			}}}},
		Schemas: map[string]any{
			"ThingList": map[string]any{"type": "object", "required": []any{"things"}, "properties": map[string]any{
				"things": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/Thing"}, "description": "every thing"}}},
			"Thing": map[string]any{"type": "object", "description": "one thing", "properties": map[string]any{
				"kind": map[string]any{"type": "string", "enum": []any{"big", "small"}, "description": "its size"},
				"made": map[string]any{"type": "string", "format": "date-time"}}},
		},
	})
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := http.Get(s.URL() + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(b)
	for _, want := range []string{
		`Body: <code>application/json</code> &mdash; <a href="#schema-ThingList">ThingList</a>`,
		`<code>things</code> <span class="pub">required</span></td><td>array of Thing</td><td>every thing</td>`,
		`Header <code>X-Count</code> (integer): how many things`,
		`<h3 id="schema-Thing">Thing</h3><p>one thing</p>`,
		`<td>string: big, small</td><td>its size</td>`,
		`<td>string (date-time)</td>`,
		`<a href="#schema-ErrorResponse">ErrorResponse</a>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the docs page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
}
