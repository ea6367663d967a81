package web

import (
	"errors"
	"fmt"
	"image"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
)

// EventEntry is a track event as GET /v1/ui/events lists it: the event's own fields, an id
// (increasing in arrival order, for ?after=), and the URL of its face snapshot when the UI cut
// one (from the frame the event's crop references, while that frame was still in the ring).
type EventEntry struct {
	ID uint64 `json:"id"`
	event.Event
	// Received is when the UI received the event (server clock).
	Received time.Time `json:"received"`
	// Snapshot is the path of the face snapshot (JPEG), absent when none could be cut.
	Snapshot string `json:"snapshot,omitempty"`

	snapshot []byte
}

// EventList is the answer of GET /v1/ui/events.
type EventList struct {
	// Events are oldest first.
	Events []EventEntry `json:"events"`
	// LastID is the id of the newest event the UI holds (0: none yet); pass it as ?after= to get
	// only newer ones.
	LastID uint64 `json:"last_id"`
}

// eventRing holds the latest events, oldest first. Not safe for concurrent use.
type eventRing struct {
	max    int
	nextID uint64
	items  []EventEntry
}

func newEventRing(max int) eventRing { return eventRing{max: max, nextID: 1} }

func (r *eventRing) add(e EventEntry) EventEntry {
	e.ID = r.nextID
	r.nextID++
	if len(e.snapshot) > 0 {
		e.Snapshot = fmt.Sprintf("/v1/ui/events/%d/snapshot", e.ID)
	}
	if len(r.items) >= r.max {
		n := copy(r.items, r.items[1:])
		r.items[n] = EventEntry{}
		r.items = r.items[:n]
	}
	r.items = append(r.items, e)
	return e
}

// find returns the event with id.
func (r *eventRing) find(id uint64) (EventEntry, bool) {
	if len(r.items) == 0 || id < r.items[0].ID || id > r.items[len(r.items)-1].ID {
		return EventEntry{}, false
	}
	e := r.items[id-r.items[0].ID]
	return e, e.ID == id
}

// snapshotSize is the longest side of event snapshots, in pixels.
const snapshotSize = 192

func (u *UI) onEvent(e event.Event, now time.Time) {
	u.mu.Lock()
	sf, ok := storedFrame{}, false
	if st := u.stream(e.Stream, now); st != nil && e.Crop.Stream == e.Stream {
		sf, ok = st.ring.get(e.Crop.Seq)
	}
	u.mu.Unlock()
	entry := EventEntry{Event: e, Received: now}
	if ok {
		// Cut here, in the intake goroutine: events are rare (a few per track) and the frame may
		// leave the ring before anyone asks.
		// With privacy on, the snapshot is cut from the frame as shown (its faces blurred as its
		// result says); from a frame not analysed yet, it is blurred whole when the mode covers
		// the event's face.
		src, err := u.shown(sf)
		whole := errors.Is(err, errNotAnalysed) && u.cfg.Privacy.Blurs(e.Identity != nil)
		if whole || errors.Is(err, errNotAnalysed) {
			src, err = sf, nil
		}
		var snap []byte
		if err == nil {
			snap, err = cropImage(src, e.Crop.Box, e.Crop.Width, e.Crop.Height, cropOptions{pad: 0.25, size: snapshotSize},
				u.cfg.MaxFramePixels)
		}
		if err == nil && whole {
			snap, err = privacy.BlurJPEG(snap, image.Rectangle{}, blurJPEGQuality)
		}
		if err == nil {
			entry.snapshot = snap
		}
	}
	u.mu.Lock()
	u.events.add(entry)
	u.mu.Unlock()
}

// Events returns the held events of stream ("" for every stream) of kind ("" for every kind)
// with an id above after, oldest first, at most limit (the newest of them).
func (u *UI) Events(stream, kind string, after uint64, limit int) EventList {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := EventList{Events: []EventEntry{}}
	if n := len(u.events.items); n > 0 {
		out.LastID = u.events.items[n-1].ID
	}
	for i := len(u.events.items) - 1; i >= 0 && len(out.Events) < limit; i-- {
		e := u.events.items[i]
		if e.ID <= after {
			break
		}
		if (stream == "" || e.Stream == stream) && (kind == "" || e.Kind == kind) {
			out.Events = append(out.Events, e)
		}
	}
	for i, j := 0, len(out.Events)-1; i < j; i, j = i+1, j-1 {
		out.Events[i], out.Events[j] = out.Events[j], out.Events[i]
	}
	return out
}

func (u *UI) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream, kind := q.Get("stream"), q.Get("kind")
	if stream != "" {
		if err := frame.ValidateStream(stream); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_stream", err.Error())
			return
		}
	}
	switch kind {
	case "", event.KindAppeared, event.KindRecognized, event.KindLeft:
	default:
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_kind",
			fmt.Sprintf("kind %q: want %s, %s or %s", kind, event.KindAppeared, event.KindRecognized, event.KindLeft))
		return
	}
	var after uint64
	if s := q.Get("after"); s != "" {
		var err error
		if after, err = strconv.ParseUint(s, 10, 64); err != nil {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("after %q: want an event id", s))
			return
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", fmt.Sprintf("limit %q: want 1 to 1000", s))
			return
		}
		limit = n
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, u.Events(stream, kind, after, limit))
}

func (u *UI) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_field", "the event id must be a number")
		return
	}
	u.mu.Lock()
	e, ok := u.events.find(id)
	u.mu.Unlock()
	if !ok || len(e.snapshot) == 0 {
		httpapi.WriteError(w, http.StatusNotFound, "snapshot_not_found",
			fmt.Sprintf("event %d has no snapshot here (the UI keeps the latest %d events)", id, u.cfg.Events))
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable")
	_, _ = w.Write(e.snapshot)
}
