package web

import (
	"cmp"
	"embed"
	"io/fs"
	"net/http"

	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
)

// assets are the pages: static/index.html, app.js, app.css. Plain files, no build step.
//
//go:embed static
var assets embed.FS

// PagePath is the UI's page: the URL to open is the server's URL + PagePath.
const PagePath = "/"

// contentSecurityPolicy keeps the page to its own origin: no outside scripts, styles, images or
// connections; the camera page (/publish/{stream}) may be framed.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'self'"

// Mount adds the page, its assets and the /v1/ui/ routes, with their OpenAPI description, to
// srv. Call it before srv.Start.
//
//	GET  /                                  the page (index.html)
//	GET  /ui/{file}                         its assets (app.js, app.css)
//	GET  /favicon.ico                       the page's icon (SVG)
//	GET  /v1/ui/config                      what this UI can do (rename, ring size)
//	GET  /v1/ui/streams                     the streams seen on NATS: state, fps, drops
//	GET  /v1/ui/live/{stream}               the live stream of frames with results (see live.go)
//	GET  /v1/ui/crops/{stream}/{seq}?box=   a face crop from a held frame (JPEG)
//	GET  /v1/ui/events                      recent track events (?stream=&kind=&after=&limit=)
//	GET  /v1/ui/events/{id}/snapshot        an event's face snapshot (JPEG)
//	POST /v1/ui/latency                     browsers report their draw latency
//	GET  /v1/ui/stats                       counters and the reported UI latency
//	GET  /v1/ui/clock                       the server's clock, for latency measurement
//	POST /v1/ui/identities/{id}/rename      rename an identity (only with Config.Store)
func (u *UI) Mount(srv *httpapi.Server) {
	srv.HandleFunc("GET /{$}", u.servePage)
	srv.Handle("GET /ui/", http.StripPrefix("/ui/", u.assetHandler()))
	srv.HandleFunc("GET /favicon.ico", u.serveFavicon)
	srv.HandleFunc("GET /v1/ui/config", u.serveConfig)
	srv.HandleFunc("GET /v1/ui/streams", u.serveStreams)
	srv.HandleFunc("GET /v1/ui/live/{stream}", u.serveLive)
	srv.HandleFunc("GET /v1/ui/crops/{stream}/{seq}", u.serveCrop)
	srv.HandleFunc("GET /v1/ui/events", u.serveEvents)
	srv.HandleFunc("GET /v1/ui/events/{id}/snapshot", u.serveSnapshot)
	srv.HandleFunc("POST /v1/ui/latency", u.serveLatency)
	srv.HandleFunc("GET /v1/ui/stats", u.serveStats)
	srv.HandleFunc("GET /v1/ui/clock", u.serveClock)
	if u.cfg.Store != nil {
		srv.HandleFunc("POST /v1/ui/identities/{id}/rename", u.serveRename)
	}
	srv.Describe(u.doc())
}

func (u *UI) servePage(w http.ResponseWriter, r *http.Request) {
	page, err := fs.ReadFile(u.static, "index.html")
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, "internal", "the page is missing from this build")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodHead {
		_, _ = w.Write(page)
	}
}

// serveFavicon answers browsers' /favicon.ico with the page's SVG icon (Chromium and Firefox
// take SVG there), so that it is no 404 in the logs.
func (u *UI) serveFavicon(w http.ResponseWriter, r *http.Request) {
	icon, err := fs.ReadFile(u.static, "favicon.svg")
	if err != nil {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "no icon in this build")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "max-age=86400")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodHead {
		_, _ = w.Write(icon)
	}
}

func (u *UI) assetHandler() http.Handler {
	files := http.FileServerFS(u.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path == "index.html" {
			http.Redirect(w, r, PagePath, http.StatusFound)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// UIConfig is the answer of GET /v1/ui/config: what this server's UI part offers.
type UIConfig struct {
	// Rename says whether POST /v1/ui/identities/{id}/rename is available.
	Rename bool `json:"rename"`
	// RingFrames is how many recent frames per stream the UI keeps (crops of older frames fail).
	RingFrames int `json:"ring_frames"`
	// ViewerQueue is how many frames may wait for one browser before the oldest is dropped.
	ViewerQueue int `json:"viewer_queue"`
	// Results is the subject prefix results are read from.
	Results string `json:"results"`
	// Privacy is the blur mode of the images the UI serves: off, blur-unknown or blur-all.
	Privacy string `json:"privacy"`
}

func (u *UI) serveConfig(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, UIConfig{Rename: u.cfg.Store != nil, RingFrames: u.cfg.RingFrames,
		ViewerQueue: u.cfg.ViewerQueue, Results: u.cfg.ResultsPrefix, Privacy: string(cmp.Or(u.cfg.Privacy, privacy.Off))})
}

func (u *UI) serveStreams(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"streams": u.Streams(), "server_ms": unixMS(u.cfg.now())})
}
