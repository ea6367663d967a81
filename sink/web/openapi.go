package web

import "github.com/vigil-video/vigil/pkg/httpapi"

// doc describes the routes Mount adds.
func (u *UI) doc() httpapi.Doc {
	tag := []any{"web ui"}
	jsonResp := func(desc string, schema map[string]any) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	obj := func(props map[string]any) map[string]any {
		return map[string]any{"type": "object", "properties": props}
	}
	str := map[string]any{"type": "string"}
	num := map[string]any{"type": "number"}
	integer := map[string]any{"type": "integer"}
	param := func(name, in, desc string, schema map[string]any, required bool) map[string]any {
		return map[string]any{"name": name, "in": in, "description": desc, "required": required, "schema": schema}
	}
	streamParam := param("stream", "path", "stream id ([A-Za-z0-9_-]{1,64})", str, true)
	jpegResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"image/jpeg": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
	}
	paths := map[string]map[string]any{
		"/": {"get": map[string]any{"tags": tag, "summary": "The web UI",
			"description": "Live view per stream with face overlays, stream list, gallery enrollment, classifiers, events. Plain HTML, CSS and JavaScript from the binary; works offline.",
			"responses":   map[string]any{"200": map[string]any{"description": "the page", "content": map[string]any{"text/html": map[string]any{}}}}}},
		"/v1/ui/config": {"get": map[string]any{"tags": tag, "summary": "What the UI part of this server offers",
			"responses": map[string]any{"200": jsonResp("settings", ref("UIConfig"))}}},
		"/v1/ui/streams": {"get": map[string]any{"tags": tag, "summary": "Streams seen on NATS: state, analysed fps, drops, viewers",
			"responses": map[string]any{"200": jsonResp("the streams", obj(map[string]any{
				"streams": map[string]any{"type": "array", "items": ref("UIStream")}, "server_ms": num}))}}},
		"/v1/ui/live/{stream}": {"get": map[string]any{"tags": tag, "summary": "Live frames with their results (binary stream)",
			"description": "A never-ending " + LiveContentType + " response of records: uint32 JSON length, uint32 image length, " +
				"float64 server send time (Unix ms), all big-endian, then the JSON ({\"type\": \"hello\"|\"frame\"|\"stats\"}) and the image. " +
				"A frame record is sent when a result arrives whose frame is held; a slow reader gets the oldest queued frames dropped (counted in stats records).",
			"parameters": []any{streamParam},
			"responses": map[string]any{"200": map[string]any{"description": "the stream of records", "content": map[string]any{LiveContentType: map[string]any{}}},
				"400": httpapi.ErrorResponse("invalid_stream"), "503": httpapi.ErrorResponse("too_many_viewers, too_many_streams or unavailable")}}},
		"/v1/ui/crops/{stream}/{seq}": {"get": map[string]any{"tags": tag, "summary": "A face crop from a recent frame",
			"description": "Cuts box out of frame seq of the stream (while the UI still holds it), with a margin, scaled down to size.",
			"parameters": []any{streamParam, param("seq", "path", "the frame's Vigil-Seq", integer, true),
				param("box", "query", "x1,y1,x2,y2 in pixels of the frame (or of w x h)", str, true),
				param("w", "query", "width the box refers to (default the frame's)", integer, false),
				param("h", "query", "height the box refers to", integer, false),
				param("pad", "query", "margin on each side, share of the box's longer side (0..1, default 0.2)", num, false),
				param("size", "query", "longest side of the crop in pixels (16..512, default 160)", integer, false)},
			"responses": map[string]any{"200": jpegResp("the crop"), "400": httpapi.ErrorResponse("invalid_stream, invalid_box or invalid_field"),
				"404": httpapi.ErrorResponse("frame_gone: the frame is no longer held"), "422": httpapi.ErrorResponse("undecodable_frame"),
				"503": httpapi.ErrorResponse("busy")}}},
		"/v1/ui/events": {"get": map[string]any{"tags": tag, "summary": "Recent track events (face appeared, recognized, left)",
			"parameters": []any{param("stream", "query", "only this stream", str, false),
				param("kind", "query", "face.appeared, face.recognized or face.left", str, false),
				param("after", "query", "only events with a higher id (the last_id of a previous answer)", integer, false),
				param("limit", "query", "at most this many, the newest (1..1000, default 100)", integer, false)},
			"responses": map[string]any{"200": jsonResp("events, oldest first", obj(map[string]any{
				"events": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}, "last_id": integer})),
				"400": httpapi.ErrorResponse("invalid_stream, invalid_kind or invalid_field")}}},
		"/v1/ui/events/{id}/snapshot": {"get": map[string]any{"tags": tag, "summary": "An event's face snapshot",
			"parameters": []any{param("id", "path", "event id", integer, true)},
			"responses":  map[string]any{"200": jpegResp("the snapshot"), "404": httpapi.ErrorResponse("snapshot_not_found")}}},
		"/v1/ui/latency": {"post": map[string]any{"tags": tag, "summary": "Report overlay draw latency (browsers)",
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": obj(map[string]any{
				"stream": str, "superseded": integer, "samples": map[string]any{"type": "array", "items": obj(map[string]any{
					"seq": integer, "total_ms": num, "server_ms": num, "client_ms": num})}})}}},
			"responses": map[string]any{"204": map[string]any{"description": "recorded"}, "400": httpapi.ErrorResponse("invalid_json or too_many_samples")}}},
		"/v1/ui/stats": {"get": map[string]any{"tags": tag, "summary": "UI counters and the overlay latency browsers reported (p50/p95/p99/max)",
			"responses": map[string]any{"200": jsonResp("counters", map[string]any{"type": "object"})}}},
		"/v1/ui/clock": {"get": map[string]any{"tags": tag, "summary": "The server's clock (Unix ms), for latency measurement",
			"responses": map[string]any{"200": jsonResp("the time", obj(map[string]any{"server_ms": num}))}}},
	}
	if u.cfg.Store != nil {
		paths["/v1/ui/identities/{id}/rename"] = map[string]any{"post": map[string]any{"tags": tag, "summary": "Rename an identity",
			"description": "Re-creates the identity under the new name with the same embeddings and deletes the old one (the face API has no rename).",
			"parameters":  []any{param("id", "path", "identity id", str, true)},
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": obj(map[string]any{"name": str})}}},
			"responses": map[string]any{"200": jsonResp("the renamed identity", map[string]any{"type": "object"}),
				"400": httpapi.ErrorResponse("invalid_json or invalid_name"), "404": httpapi.ErrorResponse("identity_not_found"),
				"409": httpapi.ErrorResponse("identity_exists"), "503": httpapi.ErrorResponse("gallery_unavailable")}}}
	}
	schemas := map[string]any{
		"UIConfig": obj(map[string]any{"rename": map[string]any{"type": "boolean"}, "ring_frames": integer, "viewer_queue": integer, "results": str,
			"privacy": map[string]any{"type": "string", "enum": []string{"off", "blur-unknown", "blur-all"}}}),
		"UIStream": obj(map[string]any{"name": str, "state": map[string]any{"type": "string", "enum": []any{"live", "idle", "ended", "waiting"}},
			"fps": num, "frames_fps": num, "drops_per_sec": num, "results": integer, "frames": integer, "drops": integer,
			"drop_reasons": map[string]any{"type": "object", "additionalProperties": integer}, "width": integer, "height": integer,
			"faces": integer, "names": map[string]any{"type": "array", "items": str}, "latency_ms": num,
			"last_result": map[string]any{"type": "string", "format": "date-time"}, "viewers": integer, "viewer_drops": integer, "unmatched": integer}),
	}
	return httpapi.Doc{Paths: paths, Schemas: schemas, Tags: []map[string]any{
		{"name": "web ui", "description": "The browser UI at / and the routes behind it."}}}
}
