package eventstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/pkg/httpapi"
)

// Paths of the history API.
const (
	PathEvents   = "/v1/history/events"
	PathEvent    = "/v1/history/events/{id}"
	PathSnapshot = "/v1/history/events/{id}/snapshot"
	PathResults  = "/v1/history/results"
)

// API serves a Store's history over HTTP for the UI, on an httpapi.Server (which brings API
// keys, CORS, rate limits and logs):
//
//	GET /v1/history/events?stream=&kind=&identity=&identified=&track_id=&since=&until=&before=&limit=
//	GET /v1/history/events/{id}
//	GET /v1/history/events/{id}/snapshot      (image/jpeg)
//	GET /v1/history/results?stream=&identified=&since=&until=&before=&limit=
//
// Lists are newest first: {"events": [...], "next_before": ID} where next_before, when not 0,
// is the ?before= of the next page. since and until are RFC 3339 times or Unix seconds.
type API struct {
	// Store answers the queries. Required.
	Store *Store
	// Timeout bounds each query. Default 10s.
	Timeout time.Duration
}

// Mount adds the routes and their OpenAPI description to srv.
func (a *API) Mount(srv *httpapi.Server) {
	srv.HandleFunc("GET "+PathEvents, httpapi.Query(a.Timeout, defaultTimeout, a.fail, a.events))
	srv.HandleFunc("GET "+PathEvent, httpapi.Query(a.Timeout, defaultTimeout, a.fail, a.event))
	srv.HandleFunc("GET "+PathSnapshot, a.serveSnapshot)
	srv.HandleFunc("GET "+PathResults, httpapi.Query(a.Timeout, defaultTimeout, a.fail, a.results))
	srv.Describe(openAPI())
}

// defaultTimeout bounds each query when API.Timeout is not set.
const defaultTimeout = 10 * time.Second

// EventList is the answer of GET /v1/history/events.
type EventList struct {
	// Events are newest first.
	Events []StoredEvent `json:"events"`
	// NextBefore is the ?before= of the next (older) page; 0 when this page is the last.
	NextBefore int64 `json:"next_before"`
}

// ResultList is the answer of GET /v1/history/results.
type ResultList struct {
	// Results are newest first.
	Results []ResultSummary `json:"results"`
	// NextBefore is the ?before= of the next (older) page; 0 when this page is the last.
	NextBefore int64 `json:"next_before"`
}

// ErrQuery is wrapped by the Parse*Filter errors.
var ErrQuery = errors.New("invalid query")

// ParseEventFilter reads an EventFilter from URL query parameters (stream, kind, identity,
// identified, track_id, since, until, before, limit) and validates it. Unknown or repeated
// parameters are errors.
func ParseEventFilter(q url.Values) (EventFilter, error) {
	var f EventFilter
	err := parseQuery(q, map[string]func(string) error{
		"stream":     func(v string) error { f.Stream = v; return nil },
		"kind":       func(v string) error { f.Kind = v; return nil },
		"identity":   func(v string) error { f.Identity = v; return nil },
		"track_id":   func(v string) error { f.TrackID = v; return nil },
		"identified": func(v string) (err error) { f.Identified, err = strconv.ParseBool(v); return err },
		"since":      func(v string) (err error) { f.Since, err = parseTime(v); return err },
		"until":      func(v string) (err error) { f.Until, err = parseTime(v); return err },
		"before":     func(v string) (err error) { f.Before, err = strconv.ParseInt(v, 10, 64); return err },
		"limit":      func(v string) (err error) { f.Limit, err = strconv.Atoi(v); return err },
	})
	if err != nil {
		return EventFilter{}, err
	}
	if err := f.Validate(); err != nil {
		return EventFilter{}, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return f, nil
}

// ParseResultFilter reads a ResultFilter from URL query parameters (stream, identified, since,
// until, before, limit) and validates it.
func ParseResultFilter(q url.Values) (ResultFilter, error) {
	var f ResultFilter
	err := parseQuery(q, map[string]func(string) error{
		"stream":     func(v string) error { f.Stream = v; return nil },
		"identified": func(v string) (err error) { f.Identified, err = strconv.ParseBool(v); return err },
		"since":      func(v string) (err error) { f.Since, err = parseTime(v); return err },
		"until":      func(v string) (err error) { f.Until, err = parseTime(v); return err },
		"before":     func(v string) (err error) { f.Before, err = strconv.ParseInt(v, 10, 64); return err },
		"limit":      func(v string) (err error) { f.Limit, err = strconv.Atoi(v); return err },
	})
	if err != nil {
		return ResultFilter{}, err
	}
	if err := f.Validate(); err != nil {
		return ResultFilter{}, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return f, nil
}

func parseQuery(q url.Values, params map[string]func(string) error) error {
	for k, vs := range q {
		set, ok := params[k]
		if !ok {
			return fmt.Errorf("%w: unknown parameter %q", ErrQuery, truncate(k))
		}
		if len(vs) != 1 {
			return fmt.Errorf("%w: %s given %d times", ErrQuery, k, len(vs))
		}
		if len(vs[0]) > 256 {
			return fmt.Errorf("%w: %s longer than 256 bytes", ErrQuery, k)
		}
		if err := set(vs[0]); err != nil {
			return fmt.Errorf("%w: %s=%q: %w", ErrQuery, k, truncate(vs[0]), err)
		}
	}
	return nil
}

// parseTime reads an RFC 3339 time or Unix seconds.
func parseTime(v string) (time.Time, error) {
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > 1<<33 {
			return time.Time{}, errors.New("Unix seconds out of range")
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time (2026-11-22T00:05:14Z) or Unix seconds")
	}
	if t.Year() < 1970 || t.Year() > 2200 {
		return time.Time{}, errors.New("time out of range 1970..2200")
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// fail answers a query's error: 400 for a bad query, 404, 503 when the store is closed or
// slow, else 500.
func (a *API) fail(w http.ResponseWriter, err error) {
	httpapi.WriteErrorCase(w, err,
		httpapi.ErrorCase{Err: ErrQuery, Status: http.StatusBadRequest, Code: "invalid_query"},
		httpapi.ErrorCase{Err: ErrInvalid, Status: http.StatusBadRequest, Code: "invalid_query"},
		httpapi.ErrorCase{Err: ErrNotFound, Status: http.StatusNotFound, Code: "not_found"},
		httpapi.ErrorCase{Err: ErrClosed, Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the event store is closed"},
		httpapi.ErrorCase{Err: context.DeadlineExceeded, Status: http.StatusServiceUnavailable, Code: "timeout",
			Message: "the event store did not answer in time"},
		httpapi.ErrorCase{Status: http.StatusInternalServerError, Code: "store_error"})
}

func (a *API) events(ctx context.Context, r *http.Request) (EventList, error) {
	f, err := ParseEventFilter(r.URL.Query())
	if err != nil {
		return EventList{}, err
	}
	evs, err := a.Store.Events(ctx, f)
	if err != nil {
		return EventList{}, err
	}
	out := EventList{Events: evs}
	if len(evs) == limit(f.Limit) {
		out.NextBefore = evs[len(evs)-1].ID
	}
	return out, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: id %q is not an event id", ErrQuery, truncate(r.PathValue("id")))
	}
	return id, nil
}

func (a *API) event(ctx context.Context, r *http.Request) (StoredEvent, error) {
	id, err := pathID(r)
	if err != nil {
		return StoredEvent{}, err
	}
	return a.Store.Event(ctx, id)
}

func (a *API) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	ctx, cancel := httpapi.Deadline(r, a.Timeout, defaultTimeout)
	defer cancel()
	b, err := a.Store.Snapshot(ctx, id)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable") // an event's snapshot never changes
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

func (a *API) results(ctx context.Context, r *http.Request) (ResultList, error) {
	f, err := ParseResultFilter(r.URL.Query())
	if err != nil {
		return ResultList{}, err
	}
	rs, err := a.Store.Results(ctx, f)
	if err != nil {
		return ResultList{}, err
	}
	out := ResultList{Results: rs}
	if len(rs) == limit(f.Limit) {
		out.NextBefore = rs[len(rs)-1].ID
	}
	return out, nil
}

// openAPI describes the routes.
func openAPI() httpapi.Doc {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	param := func(name, typ, desc string) map[string]any {
		return map[string]any{"name": name, "in": "query", "required": false, "description": desc, "schema": map[string]any{"type": typ}}
	}
	idParam := map[string]any{"name": "id", "in": "path", "required": true, "description": "event id", "schema": map[string]any{"type": "integer"}}
	common := []any{
		param("since", "string", "capture time from (inclusive): RFC 3339 or Unix seconds"),
		param("until", "string", "capture time until (exclusive): RFC 3339 or Unix seconds"),
		param("before", "integer", "only ids below this: the next_before of the previous page"),
		param("limit", "integer", "most items, 1..1000 (default 100)"),
		param("stream", "string", "only this stream"),
		param("identified", "boolean", "only with an identity"),
	}
	eventParams := append([]any{
		param("kind", "string", "face.appeared, face.recognized or face.left"),
		param("identity", "string", "only this identity"),
		param("track_id", "string", "only this track"),
	}, common...)
	errs := func(ok map[string]any) map[string]any {
		ok["400"] = httpapi.ErrorResponse("invalid query (code invalid_query)")
		ok["503"] = httpapi.ErrorResponse("the store is closed or did not answer in time")
		return ok
	}
	jsonResp := func(desc, schema string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{
			"schema": map[string]any{"$ref": "#/components/schemas/" + schema}}}}
	}
	return httpapi.Doc{
		Tags: []map[string]any{{"name": "history", "description": "Stored track events with face snapshots, and result summaries (the event store)."}},
		Paths: map[string]map[string]any{
			PathEvents: {"get": map[string]any{"tags": []any{"history"}, "summary": "List stored events, newest first",
				"parameters": eventParams, "responses": errs(map[string]any{"200": jsonResp("a page of events", "HistoryEventList")})}},
			"/v1/history/events/{id}": {"get": map[string]any{"tags": []any{"history"}, "summary": "One stored event",
				"parameters": []any{idParam}, "responses": errs(map[string]any{"200": jsonResp("the event", "HistoryEvent"),
					"404": httpapi.ErrorResponse("no such event")})}},
			"/v1/history/events/{id}/snapshot": {"get": map[string]any{"tags": []any{"history"}, "summary": "The event's face snapshot (JPEG)",
				"parameters": []any{idParam}, "responses": errs(map[string]any{
					"200": map[string]any{"description": "the snapshot", "content": map[string]any{"image/jpeg": map[string]any{
						"schema": map[string]any{"type": "string", "format": "binary"}}}},
					"404": httpapi.ErrorResponse("no such event, or it has no snapshot")})}},
			PathResults: {"get": map[string]any{"tags": []any{"history"}, "summary": "List stored result summaries, newest first",
				"parameters": common, "responses": errs(map[string]any{"200": jsonResp("a page of result summaries", "HistoryResultList")})}},
		},
		Schemas: map[string]any{
			"HistoryEvent": map[string]any{"type": "object", "description": "a track event (see vigil.events.<stream>.<kind>) with its store id",
				"properties": map[string]any{
					"id": map[string]any{"type": "integer"}, "kind": str("face.appeared, face.recognized or face.left"),
					"stream": str("stream id"), "track_id": str("track id"), "identity": map[string]any{"type": "object"},
					"crop": map[string]any{"type": "object"}, "has_snapshot": map[string]any{"type": "boolean"},
					"unknown_id": str("the unknown person the event's track is filed under now; absent when none"),
					"stored_at":  str("when the store received it (RFC 3339)"),
				}},
			"HistoryEventList": map[string]any{"type": "object", "properties": map[string]any{
				"events":      map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/HistoryEvent"}},
				"next_before": map[string]any{"type": "integer", "description": "before= of the next page; 0: last page"}}},
			"HistoryResultList": map[string]any{"type": "object", "properties": map[string]any{
				"results": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
					"id": map[string]any{"type": "integer"}, "stream": str("stream id"), "seq": map[string]any{"type": "integer"},
					"faces": map[string]any{"type": "integer"}, "identified": map[string]any{"type": "integer"},
					"identities": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}}},
				"next_before": map[string]any{"type": "integer"}}},
		},
	}
}
