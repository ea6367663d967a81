package faceapi

import (
	"strconv"
	"strings"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// fieldDoc documents a scalar request field: its JSON type and description.
func fieldDoc(name string) (string, string) {
	switch name {
	case "heads":
		return "string", "comma-separated heads: age, gender, emotion, liveness, pose; or all, default, none (a JSON array of names works too)"
	case "threshold":
		return "number", "cosine similarity from which two faces are the same person, -1..1"
	case "top_k":
		return "integer", "most matches per face, 1..100 (default 3)"
	case "name":
		return "string", "the person's name: letters, digits, spaces and . - _ ' (1-64 characters)"
	case "box":
		return "string", "optional face box x1,y1,x2,y2 in pixels of the photo: enroll the face in it when the photo shows several; " +
			"one box for every photo, or one per photo separated by ';'"
	}
	return "string", ""
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func obj(required []string, props map[string]any) map[string]any {
	m := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		r := make([]any, len(required))
		for i, s := range required {
			r[i] = s
		}
		m["required"] = r
	}
	return m
}

func typ(t, desc string) map[string]any {
	m := map[string]any{"type": t}
	if desc != "" {
		m["description"] = desc
	}
	return m
}

func arr(items any) map[string]any { return map[string]any{"type": "array", "items": items} }

// requestBody documents a route's accepted bodies.
func requestBody(spec formSpec) map[string]any {
	mp, js := map[string]any{}, map[string]any{}
	var required []string
	for _, f := range spec.images {
		desc := "JPEG or PNG"
		if len(f.aliases) > 0 {
			desc += " (also accepted as " + strings.Join(f.aliases, ", ") + ")"
		}
		bin := map[string]any{"type": "string", "format": "binary", "description": desc}
		b64 := map[string]any{"type": "string", "format": "byte", "description": desc + ", base64 or a data: URL"}
		if f.multi {
			mp[f.name], js[f.name] = arr(bin), arr(b64)
		} else {
			mp[f.name], js[f.name] = bin, b64
			required = append(required, f.name)
		}
	}
	for _, name := range spec.fields {
		t, desc := fieldDoc(name)
		mp[name] = typ("string", desc)
		js[name] = typ(t, desc)
	}
	if len(spec.fields) > 0 && spec.fields[0] == "name" {
		required = append(required, "name")
	}
	content := map[string]any{
		"multipart/form-data": map[string]any{"schema": obj(required, mp)},
		"application/json":    map[string]any{"schema": obj(required, js)},
	}
	if len(spec.images) == 1 && (len(spec.fields) == 0 || spec.fields[0] != "name") {
		raw := map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
		content["image/jpeg"], content["image/png"] = raw, raw
	}
	return map[string]any{"required": true, "content": content,
		"description": "multipart files, JSON with base64 images, or the raw image (fields then go in the query string)"}
}

func (a *API) doc() httpapi.Doc {
	paths := map[string]map[string]any{}
	for _, rt := range a.routes {
		op := map[string]any{"tags": []any{rt.tag}, "summary": rt.summary, "operationId": operationID(rt)}
		if rt.details != "" {
			op["description"] = rt.details
		}
		var params []any
		for _, p := range rt.params {
			params = append(params, map[string]any{"name": p[0], "in": p[1], "required": p[1] == "path", "description": p[2],
				"schema": map[string]any{"type": "string"}})
		}
		if rt.spec != nil {
			op["requestBody"] = requestBody(*rt.spec)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		resp := map[string]any{}
		ok := map[string]any{"description": "success"}
		switch rt.okSchema {
		case "":
		case "jpeg":
			ok["content"] = map[string]any{"image/jpeg": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
			ok["headers"] = map[string]any{"X-Faces": map[string]any{"description": "the number of faces found (and drawn)",
				"schema": map[string]any{"type": "integer", "minimum": 0}}}
		default:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.okSchema)}}
		}
		resp[strconv.Itoa(rt.okStatus)] = ok
		for st, desc := range rt.errors {
			resp[strconv.Itoa(st)] = httpapi.ErrorResponse(desc)
		}
		op["responses"] = resp
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	tags := []map[string]any{{"name": "faces", "description": "Face analysis of uploaded images. Results use the Face schema of the analyzers' " +
		"results on NATS (vigil.results.<stream>)."}}
	if a.cfg.Gallery != nil {
		tags = append(tags, map[string]any{"name": "gallery", "description": "Enrolled identities, stored in a NATS JetStream KV bucket " +
			"that every analyzer watches: an enrollment takes effect everywhere within a second, without a restart."})
	}
	return httpapi.Doc{Paths: paths, Schemas: schemas(), Tags: tags}
}

func operationID(rt route) string {
	id := strings.ToLower(rt.method)
	for _, part := range strings.Split(strings.Trim(rt.path, "/"), "/") {
		part = strings.Trim(part, "{}")
		if part == "" || part == "v1" {
			continue
		}
		id += strings.ToUpper(part[:1]) + part[1:]
	}
	return id
}

// schemas documents the response types; TestOpenAPIMatchesTypes keeps them in step with the Go
// structs' JSON fields.
func schemas() map[string]any {
	num := func(desc string) map[string]any { return typ("number", desc) }
	face := obj([]string{"box", "score"}, map[string]any{
		"box":       ref("Box"),
		"score":     num("detector confidence, 0..1"),
		"landmarks": map[string]any{"type": "array", "items": ref("Point"), "description": "left eye, right eye, nose tip, left and right mouth corner"},
		"track_id":  typ("string", "track id across frames (video results only)"),
		"identity":  ref("FaceIdentity"),
		"age":       num("estimated age in years (age head)"),
		"gender":    ref("Gender"),
		"emotion":   ref("Emotion"),
		"liveness":  ref("Liveness"),
		"pose":      ref("Pose"),
		"too_small": typ("boolean", "true when the face's shorter box side is below the analyzer's minimum for recognition (40 px by default): "+
			"it was not embedded and its liveness not estimated, so identity and liveness are absent rather than guessed; show it as too small, not unknown"),
		"embedding": map[string]any{"type": "array", "items": typ("number", ""), "description": "L2-normalised 512-d embedding (/v1/represent)"},
		"heads_seq": typ("integer", "video results only: the newest frame of the face's track whose heads output the attribute values rest on"),
		"heads_captured_at": map[string]any{"type": "string", "format": "date-time",
			"description": "video results only: when the frame of heads_seq was captured"},
		"unknown_id": typ("string", "video results only: the unknown person (GET /v1/unknowns/{id}) the face's track matched, when it has no identity"),
		"pending_heads": map[string]any{"type": "array", "items": typ("string", ""),
			"description": "video results only: heads requested on this frame that run after its result (late heads, emotion by default); " +
				"their outputs follow on vigil.lateheads.<stream> and join the face's track"},
	})
	identified := obj([]string{"box", "score", "matches"}, map[string]any{})
	for k, v := range face["properties"].(map[string]any) {
		identified["properties"].(map[string]any)[k] = v
	}
	identified["properties"].(map[string]any)["matches"] = arr(ref("Candidate"))
	ts := map[string]any{"type": "string", "format": "date-time"}
	return map[string]any{
		"Box":          obj([]string{"x1", "y1", "x2", "y2"}, map[string]any{"x1": num(""), "y1": num(""), "x2": num(""), "y2": num("")}),
		"Point":        obj([]string{"x", "y"}, map[string]any{"x": num(""), "y": num("")}),
		"FaceIdentity": obj([]string{"name", "similarity"}, map[string]any{"name": typ("string", ""), "similarity": num("cosine similarity")}),
		"Gender": obj([]string{"label", "score"}, map[string]any{"label": map[string]any{"type": "string", "enum": []any{"male", "female"}},
			"score": num("male-ness 0..1; male above the server's threshold (0.6)")}),
		"Emotion": obj([]string{"label", "scores"}, map[string]any{"label": typ("string", "the most probable emotion"),
			"scores": map[string]any{"type": "object", "additionalProperties": typ("number", ""),
				"description": "probability of angry, disgust, fear, happy, sad, surprise, neutral"}}),
		"Liveness": obj([]string{"real", "score"}, map[string]any{"real": typ("boolean", "score >= the server's threshold"),
			"score": num("probability the face is a live person, not a photo or screen")}),
		"Pose": obj([]string{"yaw", "pitch", "roll"}, map[string]any{"yaw": num("degrees"), "pitch": num("degrees"), "roll": num("degrees")}),
		"Face": face,
		"FacesResponse": obj([]string{"schema", "width", "height", "faces", "heads", "took_ms"}, map[string]any{
			"schema": typ("integer", "result schema version"), "width": typ("integer", ""), "height": typ("integer", ""),
			"faces": arr(ref("Face")), "heads": arr(typ("string", "")), "model": typ("string", "embedding model (/v1/represent)"),
			"took_ms": num("")}),
		"VerifyResponse": obj([]string{"verified", "similarity", "threshold", "model", "faces", "face_counts", "took_ms"}, map[string]any{
			"verified": typ("boolean", "similarity >= threshold"), "similarity": num("cosine similarity of the two faces' embeddings"),
			"threshold": num(""), "model": typ("string", ""),
			"faces":       map[string]any{"type": "array", "items": ref("Face"), "minItems": 2, "maxItems": 2, "description": "the largest face of each image"},
			"face_counts": map[string]any{"type": "array", "items": typ("integer", ""), "minItems": 2, "maxItems": 2},
			"took_ms":     num("")}),
		"Candidate":      obj([]string{"id", "name", "similarity"}, map[string]any{"id": typ("string", ""), "name": typ("string", ""), "similarity": num("")}),
		"IdentifiedFace": identified,
		"IdentifyResponse": obj([]string{"schema", "width", "height", "threshold", "model", "faces", "took_ms"}, map[string]any{
			"schema": typ("integer", ""), "width": typ("integer", ""), "height": typ("integer", ""), "threshold": num(""),
			"model": typ("string", ""), "faces": arr(ref("IdentifiedFace")), "took_ms": num("")}),
		"Photo": obj([]string{"id", "added_at", "box"}, map[string]any{"id": typ("string", "16 hex digits"),
			"sha256": typ("string", "of the uploaded image"), "added_at": ts, "box": ref("Box")}),
		"GalleryIdentity": obj([]string{"id", "name", "created_at", "updated_at", "model", "photos", "revision"}, map[string]any{
			"id": typ("string", ""), "name": typ("string", ""), "created_at": ts, "updated_at": ts,
			"model": typ("string", "embedding model of the photos"), "photos": arr(ref("Photo")),
			"revision": typ("integer", "KV revision")}),
		"IdentitySummary": obj([]string{"id", "name", "photos", "created_at", "updated_at"}, map[string]any{
			"id": typ("string", ""), "name": typ("string", ""), "photos": typ("integer", "number of photos"), "created_at": ts, "updated_at": ts}),
		"IdentityList": obj([]string{"identities"}, map[string]any{"identities": arr(ref("IdentitySummary")),
			"skipped": typ("integer", "stored records left out because they are corrupt (logged; absent when none)")}),
		"EnrollResponse": obj([]string{"identity", "added", "faces"}, map[string]any{"identity": ref("GalleryIdentity"), "added": arr(typ("string", "photo id")),
			"faces": map[string]any{"type": "array", "items": ref("EnrolledFace"), "description": "for each photo of the request, in order: the face enrolled"}}),
		"EnrolledFace": obj([]string{"photo", "box", "score", "faces_found", "chosen"}, map[string]any{
			"photo": typ("string", "photo id"), "box": ref("Box"), "score": num("detector confidence of the enrolled face"),
			"faces_found": typ("integer", "faces the detector found in the photo"),
			"chosen": map[string]any{"type": "string", "enum": []any{ChosenOnly, ChosenDominant, ChosenBox},
				"description": "only: the photo's only face; dominant: every other face is at most a quarter of its area or 0.2 less certain; box: the face in the request's box"}}),
	}
}
