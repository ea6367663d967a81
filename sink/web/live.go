package web

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

// The live stream, GET /v1/ui/live/{stream}, is a never-ending response of records:
//
//	offset 0   uint32, big-endian   J: length of the JSON part
//	offset 4   uint32, big-endian   N: length of the image part (0 for none)
//	offset 8   float64, big-endian  when the server wrote the record, Unix milliseconds
//	offset 16  J bytes              JSON: {"type": "hello" | "frame" | "stats", ...}
//	           N bytes              the frame's image (JPEG or PNG, as published)
//
// "hello" comes first ({"type","stream","server_ms","queue","info"}); then the stream's latest
// frame, if the UI has one; then a "frame" record for every result whose frame is in the ring
// ({"type","stream","seq","recv_ms","encoding","result"}: recv_ms is when the result arrived
// from NATS), and a "stats" record every second ({"type","info","dropped"}: the stream's
// StreamInfo and the frames dropped for this browser so far). The browser draws the result's
// boxes over the image and reports its latency to POST /v1/ui/latency.
const (
	// LiveContentType is the media type of the live stream.
	LiveContentType = "application/vnd.vigil.live"
	// recordHeader is the size of a record's fixed header.
	recordHeader = 16
)

// record is one encoded record without its header; shared by every browser it is sent to.
type record struct {
	json  []byte
	image []byte
}

// viewer is one open live stream.
type viewer struct {
	stream  string
	ch      chan *record
	dropped uint64 // records dropped because ch was full; guarded by UI.mu
	abort   func() // makes a blocked write fail at once
}

// offer queues rec for the browser, dropping the oldest queued record when the queue is full.
// It reports whether it dropped one. Only the intake goroutine calls it (with UI.mu held), so
// the loop ends: the browser's handler only takes from ch.
func (v *viewer) offer(rec *record) (dropped bool) {
	for {
		select {
		case v.ch <- rec:
			if dropped {
				v.dropped++
			}
			return dropped
		default:
		}
		select {
		case <-v.ch:
			dropped = true
		default:
		}
	}
}

type helloRecord struct {
	Type     string     `json:"type"`
	Stream   string     `json:"stream"`
	ServerMS float64    `json:"server_ms"`
	Queue    int        `json:"queue"`
	Info     StreamInfo `json:"info"`
}

type statsRecord struct {
	Type    string     `json:"type"`
	Info    StreamInfo `json:"info"`
	Dropped uint64     `json:"dropped"`
}

func (u *UI) serveLive(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := frame.ValidateStream(stream); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_stream", err.Error())
		return
	}
	rc := http.NewResponseController(w)
	v := &viewer{stream: stream, ch: make(chan *record, u.cfg.ViewerQueue),
		abort: func() { _ = rc.SetWriteDeadline(time.Now()) }}
	now := u.cfg.now()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		httpapi.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the web UI is shutting down")
		return
	}
	if len(u.viewers) >= u.cfg.MaxViewers {
		u.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		httpapi.WriteError(w, http.StatusServiceUnavailable, "too_many_viewers",
			fmt.Sprintf("%d live views are open, the most this server allows; close one and retry", u.cfg.MaxViewers))
		return
	}
	st := u.stream(stream, now)
	if st == nil {
		u.mu.Unlock()
		httpapi.WriteError(w, http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("every one of the %d streams the UI keeps is being watched", u.cfg.MaxStreams))
		return
	}
	st.viewers[v] = struct{}{}
	u.viewers[v] = struct{}{}
	latest := st.latest // encoded (and blurred) below, without u.mu
	hello := helloRecord{Type: "hello", Stream: stream, ServerMS: unixMS(now), Queue: u.cfg.ViewerQueue, Info: st.infoLocked(now)}
	u.wg.Add(1)
	u.mu.Unlock()
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		delete(st.viewers, v)
		delete(u.viewers, v)
		u.mu.Unlock()
	}()

	h := w.Header()
	h.Set("Content-Type", LiveContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	hdr := make([]byte, recordHeader)
	send := func(rec *record) error {
		if err := rc.SetWriteDeadline(time.Now().Add(u.cfg.WriteTimeout)); err != nil {
			return err
		}
		binary.BigEndian.PutUint32(hdr[0:], uint32(len(rec.json)))
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(rec.image)))
		binary.BigEndian.PutUint64(hdr[8:], math.Float64bits(unixMS(u.cfg.now())))
		for _, b := range [][]byte{hdr, rec.json, rec.image} {
			if len(b) == 0 {
				continue
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	sendJSON := func(v any) error {
		js, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return send(&record{json: js})
	}
	if err := sendJSON(hello); err != nil {
		return
	}
	var first *record
	if latest != nil {
		first, _ = latest.record()
	}
	if first != nil {
		if err := send(first); err != nil {
			return
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-u.stop:
			return
		case rec := <-v.ch:
			if err := send(rec); err != nil {
				return
			}
		case <-tick.C:
			now := u.cfg.now()
			u.mu.Lock()
			s := statsRecord{Type: "stats", Info: st.infoLocked(now), Dropped: v.dropped}
			u.mu.Unlock()
			if err := sendJSON(s); err != nil {
				return
			}
		}
	}
}
