package web

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-video/vigil/pkg/event"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/result"
)

// liveWindow: a stream with a result within it is "live"; rates are measured over it.
const liveWindow = 5 * time.Second

// streamState is what the UI knows about one stream. Guarded by UI.mu.
type streamState struct {
	name    string
	ring    frameRing
	latest  *latestFrame // the latest result with its frame, for a browser that just connected
	viewers map[*viewer]struct{}

	results, frames, unmatched uint64
	resultRate, frameRate      rate
	dropRate                   rate
	drops                      map[string]uint64
	viewerDrops, sent          uint64
	width, height              int
	faces                      int
	names                      []string
	latencyMS                  float64
	lastResult, lastSeen       time.Time
	ended                      bool
	endFrames                  uint64
	endError                   string
}

// StreamInfo is a stream as GET /v1/ui/streams reports it, from what the UI saw on NATS.
type StreamInfo struct {
	Name string `json:"name"`
	// State is "live" (a result in the last 5 s), "idle" (none since), "ended" (its finite
	// source ended) or "waiting" (frames but no result yet).
	State string `json:"state"`
	// FPS is results per second over the last 5 s (the analysed rate); FramesFPS the frames
	// published per second; DropsPerSec the drops per second.
	FPS         float64 `json:"fps"`
	FramesFPS   float64 `json:"frames_fps"`
	DropsPerSec float64 `json:"drops_per_sec"`
	// Results, Frames and Drops count what the UI saw since it started; DropReasons splits Drops
	// by reason (deadline, queue, decode, inference, shutdown).
	Results     uint64            `json:"results"`
	Frames      uint64            `json:"frames"`
	Drops       uint64            `json:"drops"`
	DropReasons map[string]uint64 `json:"drop_reasons,omitempty"`
	// Width and Height are the latest analysed frame's size; Faces its face count and Names the
	// identities on it.
	Width  int      `json:"width"`
	Height int      `json:"height"`
	Faces  int      `json:"faces"`
	Names  []string `json:"names,omitempty"`
	// LatencyMS is capture to analysis of the latest result (the pipeline's latency).
	LatencyMS float64 `json:"latency_ms"`
	// LastResult is when the latest result arrived (server clock).
	LastResult time.Time `json:"last_result,omitzero"`
	// Viewers are the browsers watching; ViewerDrops the frames not sent to a slow browser;
	// Unmatched the results whose frame had already left the ring.
	Viewers     int    `json:"viewers"`
	ViewerDrops uint64 `json:"viewer_drops"`
	Unmatched   uint64 `json:"unmatched"`
	// EndFrames is the frame count a finite stream announced at its end; EndError why it ended
	// early, if it did.
	EndFrames uint64 `json:"end_frames,omitempty"`
	EndError  string `json:"end_error,omitempty"`
}

// handle takes one message from the intake.
func (u *UI) handle(m *nats.Msg) {
	now := u.cfg.now()
	switch {
	case strings.HasPrefix(m.Subject, bus.FramesPrefix+"."):
		f, err := frame.FromMsg(m)
		if err != nil {
			u.bad(m.Subject, err)
			return
		}
		u.onFrame(f, now)
	case strings.HasPrefix(m.Subject, u.cfg.ResultsPrefix+"."):
		r, err := result.ParseResult(m.Data)
		if err != nil {
			u.bad(m.Subject, err)
			return
		}
		u.onResult(&r, now)
	case strings.HasPrefix(m.Subject, bus.DropsPrefix+"."):
		d, err := result.ParseDrop(m.Data)
		if err != nil {
			u.bad(m.Subject, err)
			return
		}
		u.mu.Lock()
		if st := u.stream(d.Stream, now); st != nil {
			st.drops[d.Reason]++
			st.dropRate.add(now)
		}
		u.mu.Unlock()
	case strings.HasPrefix(m.Subject, bus.EOSPrefix+"."):
		e, err := result.ParseEndOfStream(m.Data)
		if err != nil {
			u.bad(m.Subject, err)
			return
		}
		u.mu.Lock()
		if st := u.stream(e.Stream, now); st != nil {
			st.ended, st.endFrames, st.endError = true, e.Frames, e.Error
		}
		u.mu.Unlock()
	case strings.HasPrefix(m.Subject, u.cfg.EventsPrefix+"."):
		e, err := event.ParseEvent(m.Data)
		if err != nil {
			u.bad(m.Subject, err)
			return
		}
		u.onEvent(e, now)
	}
}

// bad counts a message that did not parse and logs at most one such line a minute.
func (u *UI) bad(subject string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.invalid++
	if now := u.cfg.now(); now.Sub(u.logged) >= time.Minute {
		u.logged = now
		u.log.Warn("web: ignoring invalid messages", "subject", subject, "err", err, "invalid_total", u.invalid)
	}
}

// stream returns the state of name, creating it (and forgetting the stream idle the longest,
// unwatched, when there are MaxStreams); nil when every stream is watched and there is no room.
// Call with u.mu held.
func (u *UI) stream(name string, now time.Time) *streamState {
	if st, ok := u.streams[name]; ok {
		st.lastSeen = now
		return st
	}
	if len(u.streams) >= u.cfg.MaxStreams {
		var oldest *streamState
		for _, st := range u.streams {
			if len(st.viewers) == 0 && (oldest == nil || st.lastSeen.Before(oldest.lastSeen)) {
				oldest = st
			}
		}
		if oldest == nil {
			return nil
		}
		u.held -= oldest.ring.bytes
		delete(u.streams, oldest.name)
	}
	st := &streamState{name: name, ring: frameRing{maxFrames: u.cfg.RingFrames, maxBytes: u.cfg.RingBytes},
		viewers: map[*viewer]struct{}{}, drops: map[string]uint64{}, lastSeen: now}
	u.streams[name] = st
	return st
}

func (u *UI) onFrame(f frame.Frame, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.stream(f.Stream, now)
	if st == nil {
		return
	}
	st.frames++
	st.frameRate.add(now)
	st.ended = false      // a frame after the end of the stream: its source started again
	w, h := f.ImageSize() // the image's pixels, which blur regions are cut in
	u.held += st.ring.put(storedFrame{seq: f.Seq, captured: f.Captured, width: w, height: h, encoding: f.Encoding, data: f.Data})
	for u.held > u.cfg.TotalBytes {
		var most *streamState
		for _, s := range u.streams {
			if most == nil || s.ring.bytes > most.ring.bytes {
				most = s
			}
		}
		freed := most.ring.popOldest()
		if freed == 0 {
			break // every stream is down to its newest frame
		}
		u.held -= freed
	}
}

// liveResult is the JSON of a "frame" record: the result (without embeddings) with the server's
// receive time.
type liveResult struct {
	Type   string `json:"type"`
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	// RecvMS is when the result arrived from NATS, Unix milliseconds (server clock).
	RecvMS float64 `json:"recv_ms"`
	// Encoding is the image's format ("jpeg" or "png").
	Encoding string         `json:"encoding"`
	Result   *result.Result `json:"result"`
}

func (u *UI) onResult(r *result.Result, now time.Time) {
	for i := range r.Faces {
		r.Faces[i].Embedding = nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.stream(r.Stream, now)
	if st == nil {
		return
	}
	st.results++
	st.resultRate.add(now)
	st.lastResult = now
	st.width, st.height, st.faces, st.latencyMS = r.Width, r.Height, len(r.Faces), r.LatencyMS
	st.names = st.names[:0]
	for _, f := range r.Faces {
		if f.Identity != nil && f.Identity.Name != "" {
			st.names = append(st.names, f.Identity.Name)
		}
	}
	sf, ok := st.ring.get(r.Seq)
	if !ok {
		st.unmatched++
		return
	}
	if u.cfg.Privacy != "" && u.cfg.Privacy != privacy.Off {
		sf.analysed, sf.blur = true, blurRegions(u.cfg.Privacy, r, sf.width, sf.height)
		st.ring.mark(sf.seq, sf.blur)
	}
	st.latest = &latestFrame{res: r, frame: sf, recv: now, shown: u.shown}
	if len(st.viewers) == 0 {
		return
	}
	if u.blurring() {
		u.queueBlurLocked(st)
		return
	}
	rec, err := st.latest.record()
	if err != nil {
		u.log.Error("web: encoding a result", "stream", r.Stream, "seq", r.Seq, "err", err)
		return
	}
	u.offerLocked(st, rec)
}

// offerLocked queues rec for every browser watching st. Call with u.mu held.
func (u *UI) offerLocked(st *streamState, rec *record) {
	for v := range st.viewers {
		st.sent++
		if v.offer(rec) {
			st.viewerDrops++
		}
	}
}

// blurring reports whether frames are blurred before they are sent (Config.Privacy on).
func (u *UI) blurring() bool { return u.cfg.Privacy != "" && u.cfg.Privacy != privacy.Off }

// queueBlurLocked hands st's latest frame to the blur goroutine (blurLoop), replacing the
// stream's frame still waiting there (counted as dropped for each browser): blurring costs a
// JPEG decode and encode (tens of ms), which neither the intake nor u.mu waits for. Call with
// u.mu held.
func (u *UI) queueBlurLocked(st *streamState) {
	if old := u.pending[st.name]; old != nil && old != st.latest {
		st.viewerDrops += uint64(len(st.viewers))
	}
	u.pending[st.name] = st.latest
	select {
	case u.blurWake <- struct{}{}:
	default:
	}
}

// blurLoop blurs the frames queueBlurLocked hands it, the latest of each stream, and sends them
// to the stream's browsers, until u.stop.
func (u *UI) blurLoop() {
	for {
		select {
		case <-u.stop:
			return
		case <-u.blurWake:
		}
		u.mu.Lock()
		batch := u.pending
		u.pending = map[string]*latestFrame{}
		u.mu.Unlock()
		for name, lf := range batch {
			rec, err := lf.record()
			if err != nil {
				u.log.Error("web: blurring a frame", "stream", name, "seq", lf.res.Seq, "err", err)
				continue
			}
			u.mu.Lock()
			if st := u.streams[name]; st != nil {
				u.offerLocked(st, rec)
			}
			u.mu.Unlock()
		}
	}
}

// latestFrame is a stream's latest result with its frame.
type latestFrame struct {
	res   *result.Result
	frame storedFrame
	recv  time.Time
	// shown turns the frame into what may leave the server (UI.shown: blurred under privacy).
	shown func(storedFrame) (storedFrame, error)

	once sync.Once
	rec  *record // the encoded record, once made
	err  error
}

// record encodes l as a "frame" record, its image as shown allows. It is made once (every
// browser gets the same record) and is safe for concurrent use.
func (l *latestFrame) record() (*record, error) {
	l.once.Do(func() {
		f, err := l.shown(l.frame)
		if err != nil {
			l.err = err
			return
		}
		js, err := json.Marshal(liveResult{Type: "frame", Stream: l.res.Stream, Seq: l.res.Seq, RecvMS: unixMS(l.recv),
			Encoding: f.encoding, Result: l.res})
		if err != nil {
			l.err = err
			return
		}
		l.rec = &record{json: js, image: f.data}
	})
	return l.rec, l.err
}

// infoLocked returns st as StreamInfo. Call with u.mu held.
func (st *streamState) infoLocked(now time.Time) StreamInfo {
	in := StreamInfo{Name: st.name, Results: st.results, Frames: st.frames, Width: st.width, Height: st.height, Faces: st.faces,
		LatencyMS: st.latencyMS, LastResult: st.lastResult, Viewers: len(st.viewers), ViewerDrops: st.viewerDrops,
		Unmatched: st.unmatched, EndFrames: st.endFrames, EndError: st.endError,
		FPS: st.resultRate.perSecond(now), FramesFPS: st.frameRate.perSecond(now), DropsPerSec: st.dropRate.perSecond(now)}
	if len(st.names) > 0 {
		in.Names = append([]string(nil), st.names...)
	}
	if len(st.drops) > 0 {
		in.DropReasons = map[string]uint64{}
		for k, v := range st.drops {
			in.Drops += v
			in.DropReasons[k] = v
		}
	}
	switch {
	case st.ended && now.Sub(st.lastResult) >= time.Second:
		in.State = "ended"
	case st.results == 0:
		in.State = "waiting"
	case now.Sub(st.lastResult) < liveWindow:
		in.State = "live"
	default:
		in.State = "idle"
	}
	return in
}

// Streams returns every stream the UI knows, by name.
func (u *UI) Streams() []StreamInfo {
	now := u.cfg.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]StreamInfo, 0, len(u.streams))
	for _, st := range u.streams {
		out = append(out, st.infoLocked(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func unixMS(t time.Time) float64 { return float64(t.UnixMicro()) / 1000 }
