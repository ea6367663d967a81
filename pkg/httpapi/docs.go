package httpapi

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
)

// Doc is a component's part of the OpenAPI 3.0 document: its operations and schemas as
// JSON-ready values (maps, slices, strings, numbers, bools). Describe merges it into the
// server's document, which adds the health probes, the shared error schema and, on every
// operation, the 401, 413 and 429 responses the policy can give.
type Doc struct {
	// Paths maps a path ("/v1/identities/{id}") to its operations by lower-case method ("post").
	Paths map[string]map[string]any
	// Schemas are added to components.schemas; reference them as "#/components/schemas/NAME".
	Schemas map[string]any
	// Tags are the operation groups, in the order the docs page lists them: {"name", "description"}.
	Tags []map[string]any
}

// ErrorSchemaRef references the schema of every error body ({"error": {"code", "message"}}).
const ErrorSchemaRef = "#/components/schemas/ErrorResponse"

// ErrorResponse returns an OpenAPI response object for an error body with this description.
func ErrorResponse(description string) map[string]any {
	return map[string]any{"description": description,
		"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": ErrorSchemaRef}}}}
}

// Describe adds d to the server's OpenAPI document. Call it before Start.
func (s *Server) Describe(d Doc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs = append(s.docs, d)
}

// OpenAPI returns the server's OpenAPI 3.0 document as served at /openapi.json.
func (s *Server) OpenAPI() map[string]any {
	s.mu.Lock()
	docs := append([]Doc(nil), s.docs...)
	s.mu.Unlock()
	paths := map[string]any{}
	schemas := map[string]any{
		"Error": map[string]any{"type": "object", "required": []any{"code", "message"}, "properties": map[string]any{
			"code":    map[string]any{"type": "string", "description": "stable machine-readable error code", "example": "invalid_image"},
			"message": map[string]any{"type": "string", "description": "what went wrong and what to do, for people"},
		}},
		"ErrorResponse": map[string]any{"type": "object", "required": []any{"error"}, "properties": map[string]any{
			"error": map[string]any{"$ref": "#/components/schemas/Error"}}},
	}
	var tags []any
	ops := map[string]map[string]any{}
	for _, d := range docs {
		for p, methods := range d.Paths {
			if ops[p] == nil {
				ops[p] = map[string]any{}
			}
			for m, op := range methods {
				ops[p][m] = op
			}
		}
		for k, v := range d.Schemas {
			schemas[k] = v
		}
		for _, t := range d.Tags {
			tags = append(tags, t)
		}
	}
	for p, methods := range ops {
		item := map[string]any{}
		for m, op := range methods {
			item[m] = s.withPolicy(strings.ToUpper(m)+" "+p, op)
		}
		paths[p] = item
	}
	probe := func(summary, desc string, extra map[string]any) map[string]any {
		resp := map[string]any{"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{
			"schema": map[string]any{"type": "object"}}}}}
		for k, v := range extra {
			resp[k] = v
		}
		return map[string]any{"get": map[string]any{"tags": []any{"server"}, "summary": summary, "description": desc,
			"security": []any{}, "responses": resp}}
	}
	paths[PathHealth] = probe("Liveness probe", "200 while the process serves HTTP.", nil)
	paths[PathReady] = probe("Readiness probe", "200 once every dependency (models, NATS, gallery) is ready, else 503 naming the failing checks.",
		map[string]any{"503": ErrorResponse("not ready: the body's checks say which dependency failed")})
	tags = append(tags, map[string]any{"name": "server", "description": "Health and readiness probes."})
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": s.Title, "version": s.Version,
			"description": "Errors are JSON: {\"error\": {\"code\": \"...\", \"message\": \"...\"}}, with a stable code. " + s.policyText()},
		"paths":      paths,
		"tags":       tags,
		"components": map[string]any{"schemas": schemas},
	}
	if len(s.APIKeys) > 0 {
		doc["components"].(map[string]any)["securitySchemes"] = map[string]any{
			"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an API key configured on the server (--api-keys)"}}
		doc["security"] = []any{map[string]any{"bearer": []any{}}}
	}
	return doc
}

// withPolicy returns op, the operation mounted on pattern, with the responses the policy can add.
func (s *Server) withPolicy(pattern string, op any) any {
	m, ok := op.(map[string]any)
	if !ok {
		return op
	}
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	resp := map[string]any{}
	if r, ok := m["responses"].(map[string]any); ok {
		for k, v := range r {
			resp[k] = v
		}
	}
	if len(s.APIKeys) > 0 {
		resp["401"] = ErrorResponse("missing_api_key or invalid_api_key: send \"Authorization: Bearer <key>\"")
	}
	if _, ok := m["requestBody"]; ok {
		if limit, setting := s.patternLimit(pattern); limit > 0 {
			how := "fixed"
			if setting != "" {
				how = "server setting " + setting
			}
			resp["413"] = ErrorResponse(fmt.Sprintf("body_too_large: the request body exceeds %s (%s)", formatBytes(limit), how))
		}
	}
	if s.RatePerMinute > 0 {
		resp["429"] = ErrorResponse("rate_limited: too many requests for this API key; see the Retry-After header")
	}
	out["responses"] = resp
	return out
}

func (s *Server) policyText() string {
	var parts []string
	if len(s.APIKeys) > 0 {
		parts = append(parts, "Every operation but the probes and docs needs an API key as a bearer token.")
	}
	if s.MaxUploadBytes > 0 {
		parts = append(parts, fmt.Sprintf("Request bodies are limited to %s.", formatBytes(s.MaxUploadBytes)))
	}
	if s.RatePerMinute > 0 {
		parts = append(parts, fmt.Sprintf("Each caller may make %g requests per minute.", s.RatePerMinute))
	}
	return strings.Join(parts, " ")
}

func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.OpenAPI())
}

// docOp is one operation on the docs page.
type docOp struct {
	Method, Path, Summary, Description string
	Params                             []docParam
	Bodies                             []string
	Fields                             []docParam
	Responses                          []docResp
	Public                             bool
}

type docParam struct{ Name, In, Type, Description string }

// docResp is a response: its status and meaning, and for one with a body its media type, the
// schema's name (a link to the Schemas section) and top-level fields, and its headers.
type docResp struct {
	Status, Description string
	Media, Schema       string
	Fields              []docParam
	Headers             []docParam
}

// docSchema is a components schema listed in the Schemas section.
type docSchema struct {
	Name, Description string
	Fields            []docParam
}

type docTag struct {
	Name, Description string
	Ops               []docOp
}

// refName returns the schema name of a "#/components/schemas/NAME" reference in schema, or "".
func refName(schema map[string]any) string {
	ref, _ := schema["$ref"].(string)
	return strings.TrimPrefix(ref, "#/components/schemas/")
}

// schemaType describes a property's type: a referenced schema's name, "array of X", a type with
// its enum values.
func schemaType(p map[string]any) string {
	if n := refName(p); n != "" {
		return n
	}
	t, _ := p["type"].(string)
	if items, ok := p["items"].(map[string]any); ok && t == "array" {
		return "array of " + schemaType(items)
	}
	if ap, ok := p["additionalProperties"].(map[string]any); ok && t == "object" {
		return "object of " + schemaType(ap)
	}
	if enum, ok := p["enum"].([]any); ok {
		vals := make([]string, 0, len(enum))
		for _, v := range enum {
			vals = append(vals, fmt.Sprint(v))
		}
		t += ": " + strings.Join(vals, ", ")
	}
	if f, ok := p["format"].(string); ok && t == "string" {
		t += " (" + f + ")"
	}
	return t
}

// schemaFields lists a schema's properties (following one $ref into schemas), sorted, required
// ones marked.
func schemaFields(schema map[string]any, schemas map[string]any) []docParam {
	if n := refName(schema); n != "" {
		schema, _ = schemas[n].(map[string]any)
	}
	props, _ := schema["properties"].(map[string]any)
	required := map[string]bool{}
	if rs, ok := schema["required"].([]any); ok {
		for _, r := range rs {
			if name, ok := r.(string); ok {
				required[name] = true
			}
		}
	}
	var out []docParam
	for name, v := range props {
		pm, _ := v.(map[string]any)
		f := docParam{Name: name, Type: schemaType(pm)}
		if required[name] {
			f.In = "required"
		}
		f.Description, _ = pm["description"].(string)
		if f.Description == "" {
			if items, ok := pm["items"].(map[string]any); ok {
				f.Description, _ = items["description"].(string)
			}
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// docResponse describes response x with status st: its body's media type and schema, and its
// headers.
func docResponse(st string, x any, schemas map[string]any) docResp {
	rm, _ := x.(map[string]any)
	r := docResp{Status: st}
	r.Description, _ = rm["description"].(string)
	if c, ok := rm["content"].(map[string]any); ok {
		media := make([]string, 0, len(c))
		for ct := range c {
			media = append(media, ct)
		}
		sort.Strings(media)
		if len(media) > 0 {
			r.Media = strings.Join(media, ", ")
			m, _ := c[media[0]].(map[string]any)
			schema, _ := m["schema"].(map[string]any)
			if r.Schema = refName(schema); r.Schema != "ErrorResponse" {
				r.Fields = schemaFields(schema, schemas)
			}
			if r.Schema == "" && len(r.Fields) == 0 {
				r.Schema = schemaType(schema)
			}
		}
	}
	if hs, ok := rm["headers"].(map[string]any); ok {
		for name, v := range hs {
			hm, _ := v.(map[string]any)
			h := docParam{Name: name, In: "header"}
			h.Description, _ = hm["description"].(string)
			if sc, ok := hm["schema"].(map[string]any); ok {
				h.Type = schemaType(sc)
			}
			r.Headers = append(r.Headers, h)
		}
		sort.Slice(r.Headers, func(i, j int) bool { return r.Headers[i].Name < r.Headers[j].Name })
	}
	return r
}

// docSchemas lists every components schema with its fields, by name.
func docSchemas(doc map[string]any) []docSchema {
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]docSchema, 0, len(names))
	for _, n := range names {
		sc, _ := schemas[n].(map[string]any)
		d := docSchema{Name: n, Fields: schemaFields(sc, schemas)}
		d.Description, _ = sc["description"].(string)
		out = append(out, d)
	}
	return out
}

// docsPage turns the OpenAPI document into the docs page's model, grouped by tag.
func docsPage(doc map[string]any) []docTag {
	comps, _ := doc["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	var tags []docTag
	index := map[string]int{}
	if ts, ok := doc["tags"].([]any); ok {
		for _, t := range ts {
			if m, ok := t.(map[string]any); ok {
				name, _ := m["name"].(string)
				desc, _ := m["description"].(string)
				if _, dup := index[name]; !dup {
					index[name] = len(tags)
					tags = append(tags, docTag{Name: name, Description: desc})
				}
			}
		}
	}
	paths, _ := doc["paths"].(map[string]any)
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	sort.Strings(names)
	order := map[string]int{"get": 0, "post": 1, "put": 2, "delete": 3}
	for _, p := range names {
		item, _ := paths[p].(map[string]any)
		methods := make([]string, 0, len(item))
		for m := range item {
			methods = append(methods, m)
		}
		sort.Slice(methods, func(i, j int) bool { return order[methods[i]] < order[methods[j]] })
		for _, m := range methods {
			op, _ := item[m].(map[string]any)
			d := docOp{Method: strings.ToUpper(m), Path: p}
			d.Summary, _ = op["summary"].(string)
			d.Description, _ = op["description"].(string)
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				d.Public = true
			}
			if ps, ok := op["parameters"].([]any); ok {
				for _, x := range ps {
					pm, _ := x.(map[string]any)
					dp := docParam{}
					dp.Name, _ = pm["name"].(string)
					dp.In, _ = pm["in"].(string)
					dp.Description, _ = pm["description"].(string)
					if sc, ok := pm["schema"].(map[string]any); ok {
						dp.Type, _ = sc["type"].(string)
					}
					d.Params = append(d.Params, dp)
				}
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				if c, ok := rb["content"].(map[string]any); ok {
					for ct := range c {
						d.Bodies = append(d.Bodies, ct)
					}
					sort.Strings(d.Bodies)
					d.Fields = bodyFields(c)
				}
			}
			if rs, ok := op["responses"].(map[string]any); ok {
				for st, x := range rs {
					d.Responses = append(d.Responses, docResponse(st, x, schemas))
				}
				sort.Slice(d.Responses, func(i, j int) bool { return d.Responses[i].Status < d.Responses[j].Status })
			}
			tag := "other"
			if ts, ok := op["tags"].([]any); ok && len(ts) > 0 {
				tag, _ = ts[0].(string)
			}
			i, ok := index[tag]
			if !ok {
				i = len(tags)
				index[tag] = i
				tags = append(tags, docTag{Name: tag})
			}
			tags[i].Ops = append(tags[i].Ops, d)
		}
	}
	return tags
}

// docsTemplate renders the docs page: self-contained HTML, no scripts, no outside assets.
// bodyFields lists the properties of a request body's JSON (else first) schema, sorted.
func bodyFields(content map[string]any) []docParam {
	media, ok := content["application/json"].(map[string]any)
	if !ok {
		for _, v := range content {
			media, _ = v.(map[string]any)
			break
		}
	}
	schema, _ := media["schema"].(map[string]any)
	props, _ := schema["properties"].(map[string]any)
	required := map[string]bool{}
	if rs, ok := schema["required"].([]any); ok {
		for _, r := range rs {
			if name, ok := r.(string); ok {
				required[name] = true
			}
		}
	}
	var out []docParam
	for name, v := range props {
		pm, _ := v.(map[string]any)
		f := docParam{Name: name, In: "body"}
		if required[name] {
			f.In = "body, required"
		}
		f.Type, _ = pm["type"].(string)
		if items, ok := pm["items"].(map[string]any); ok && f.Type == "array" {
			it, _ := items["type"].(string)
			f.Type = "array of " + it
			if f.Description == "" {
				f.Description, _ = items["description"].(string)
			}
		}
		if d, ok := pm["description"].(string); ok {
			f.Description = d
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var docsTemplate = template.Must(template.New("docs").Funcs(template.FuncMap{"lower": strings.ToLower}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} {{.Version}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2.5rem}code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;padding:.1rem .3rem}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:ui-monospace,monospace}
.get{color:#0a6}.post{color:#06c}.delete{color:#c30}.put{color:#a60}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
.pub{font-size:12px;color:#666}.body{margin:.3rem 0 0}table.fields{font-size:13px}
</style></head><body>
<h1>{{.Title}} <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI 3.0). Images go up as
<code>multipart/form-data</code> files, as JSON with base64 strings, or as a raw
<code>image/jpeg</code> / <code>image/png</code> body.</p>
{{range .Tags}}<h2 id="{{.Name}}">{{.Name}}</h2>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{range .Ops}}<div class="op"><span class="m {{.Method | lower}}">{{.Method}}</span> <code>{{.Path}}</code>
{{if .Public}}<span class="pub">(public)</span>{{end}} &mdash; {{.Summary}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if or .Params .Fields}}<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}
{{range .Fields}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{if .Bodies}}<p>Body: {{range $i, $b := .Bodies}}{{if $i}}, {{end}}<code>{{$b}}</code>{{end}}</p>{{end}}
<table><tr><th>status</th><th>meaning</th></tr>{{range .Responses}}<tr><td>{{.Status}}</td><td>{{.Description}}
{{if .Media}}<div class="body">Body: <code>{{.Media}}</code>{{if .Schema}} &mdash; <a href="#schema-{{.Schema}}">{{.Schema}}</a>{{end}}</div>{{end}}
{{if .Fields}}<table class="fields"><tr><th>field</th><th>type</th><th></th></tr>{{range .Fields}}<tr><td><code>{{.Name}}</code>{{if .In}} <span class="pub">{{.In}}</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{range .Headers}}<div class="body">Header <code>{{.Name}}</code> ({{.Type}}): {{.Description}}</div>{{end}}</td></tr>{{end}}</table>
</div>{{end}}{{end}}
{{if .Schemas}}<h2 id="schemas">Schemas</h2><p>The JSON documents the operations answer with and take.</p>
{{range .Schemas}}<h3 id="schema-{{.Name}}">{{.Name}}</h3>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Fields}}<table class="fields"><tr><th>field</th><th>type</th><th></th></tr>{{range .Fields}}<tr><td><code>{{.Name}}</code>{{if .In}} <span class="pub">{{.In}}</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{end}}{{end}}
</body></html>
`))

func (s *Server) serveDocs(w http.ResponseWriter, _ *http.Request) {
	doc := s.OpenAPI()
	info, _ := doc["info"].(map[string]any)
	desc, _ := info["description"].(string)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_ = docsTemplate.Execute(w, map[string]any{"Title": s.Title, "Version": s.Version, "Description": desc, "Tags": docsPage(doc),
		"Schemas": docSchemas(doc)})
}
