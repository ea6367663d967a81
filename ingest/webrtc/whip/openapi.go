package whip

import (
	"net/http"
	"strconv"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// doc describes the endpoint's routes for the server's OpenAPI document.
func (e *Endpoint) doc() httpapi.Doc {
	stream := map[string]any{"name": "stream", "in": "path", "required": true,
		"description": "stream name, 1-64 characters from A-Z a-z 0-9 _ -; frames are published on vigil.frames.<stream>",
		"schema":      map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
	session := map[string]any{"name": "session", "in": "path", "required": true,
		"description": "session id, from the Location header of the POST", "schema": map[string]any{"type": "string"}}
	sdpBody := map[string]any{"application/sdp": map[string]any{"schema": map[string]any{"type": "string"}}}
	errs := func(codes ...int) map[string]any {
		out := map[string]any{}
		text := map[int]string{
			http.StatusBadRequest:            "invalid_stream, or invalid_offer: not SDP, no sent video, neither VP8 nor H264, or parameters in common with none",
			http.StatusForbidden:             "refused: the ingest side does not take this stream",
			http.StatusNotFound:              "no_session: unknown or already ended",
			http.StatusRequestEntityTooLarge: "offer_too_large: the offer exceeds " + strconv.FormatInt(e.MaxOfferBytes, 10) + " bytes",
			http.StatusUnsupportedMediaType:  "unsupported_media_type: Content-Type is not application/sdp",
			http.StatusServiceUnavailable:    "unavailable: " + strconv.Itoa(e.MaxSessions) + " sessions already (Retry-After), or the server is shutting down",
		}
		for _, c := range codes {
			out[strconv.Itoa(c)] = httpapi.ErrorResponse(text[c])
		}
		return out
	}
	post := map[string]any{
		"tags": []any{"Ingest"}, "operationId": "postWhip",
		"summary": "Publish a camera over WebRTC (WHIP, RFC 9725)",
		"description": "Send an SDP offer with a sendonly video track (VP8 or H264) and its ICE candidates (no trickle). " +
			"The answer carries the server's candidates (host UDP, loopback included). A stream has one publisher: " +
			"a new offer for a stream ends the previous session. The session ends on DELETE, when the publisher closes " +
			"its connection, or ~7 s after the publisher goes silent.",
		"parameters":  []any{stream},
		"requestBody": map[string]any{"required": true, "content": sdpBody},
		"responses": mergeResponses(map[string]any{
			"201": map[string]any{"description": "the SDP answer; Location names the session resource",
				"headers": map[string]any{"Location": map[string]any{"description": "/whip/{stream}/{session}", "schema": map[string]any{"type": "string"}}},
				"content": sdpBody},
		}, errs(400, 403, 413, 415, 503)),
	}
	del := map[string]any{
		"tags": []any{"Ingest"}, "operationId": "deleteWhipSession", "summary": "End a WHIP session",
		"parameters": []any{stream, session},
		"responses":  mergeResponses(map[string]any{"200": map[string]any{"description": "the session ends"}}, errs(400, 404)),
	}
	page := map[string]any{
		"tags": []any{"Ingest"}, "operationId": "getPublishPage",
		"summary":     "A page that publishes this browser's camera to the stream",
		"description": "Open it in a browser; add ?codec=vp8 or ?codec=h264 to prefer a codec. It shows the state and stops on Stop or when closed.",
		"parameters":  []any{stream},
		"responses": mergeResponses(map[string]any{"200": map[string]any{"description": "the page",
			"content": map[string]any{"text/html": map[string]any{"schema": map[string]any{"type": "string"}}}}}, errs(400)),
	}
	return httpapi.Doc{
		Paths: map[string]map[string]any{
			"/whip/{stream}":           {"post": post},
			"/whip/{stream}/{session}": {"delete": del},
			"/publish/{stream}":        {"get": page},
		},
		Tags: []map[string]any{{"name": "Ingest", "description": "Browser cameras over WebRTC: WHIP and the publish page."}},
	}
}

func mergeResponses(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}
