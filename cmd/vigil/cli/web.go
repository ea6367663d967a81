package cli

import (
	"flag"
	"fmt"
	"image"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/privacy"
	"github.com/vigil-video/vigil/pkg/vision"
	"github.com/vigil-video/vigil/sink/web"
)

// webFlags configure the web UI that `vigil run` and `vigil serve` put on their HTTP server
// (sink/web): the page at /, the live view, the gallery and classifier screens, the events feed.
//
// Wiring, in a command that owns srv (*httpapi.Server) and a NATS connection nc:
//
//	var wf webFlags
//	wf.register(fs)                                      // with the other flags, before parse
//	...
//	ui, err := wf.mount(srv, nc, nil, svc, mode, log.With("role", "web")) // before srv.Start; svc may be nil
//	if err != nil { return err }
//	defer srv.Close()                                    // (already there)
//	defer ui.Close()                                     // after it: runs first, ends the live streams
//	...                                                  // srv.Start
//	log.Info("web UI", "open", webURL(srv, ui))          // the first URL vigil run prints
type webFlags struct {
	enabled    bool
	results    string
	frames     int
	events     int
	maxViewers int
}

func (f *webFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "web", true, "serve the web UI at / on the HTTP server: live view with face overlays, stream list, "+
		"gallery enrollment, classifiers, events")
	fs.StringVar(&f.results, "web-results", bus.ResultsPrefix, "subject prefix the web UI reads results from (the track role's enriched results)")
	fs.IntVar(&f.frames, "web-frames", 64, "recent frames the web UI keeps per stream, to match results and cut face crops")
	fs.IntVar(&f.events, "web-events", 1000, "recent events (with a face snapshot each) the web UI keeps for its feed")
	fs.IntVar(&f.maxViewers, "web-max-viewers", 64, "live views open at once, all browsers together; more get 503")
}

// mount builds the web UI over nc and mounts it on srv (call it before srv.Start); nil, nil when
// --web=false. frames, when not nil, is the frame subscription the process shares (the UI then
// does not subscribe to frames itself). svc, when not nil, gives the UI the gallery (rename);
// mode is --privacy (the UI blurs the faces it covers in every image it serves). Close the UI
// before srv.
func (f *webFlags) mount(srv *httpapi.Server, nc *nats.Conn, frames *bus.FrameFeed, svc *faceService, mode privacy.Mode, log *slog.Logger) (*web.UI, error) {
	if !f.enabled {
		return nil, nil
	}
	if f.frames < 1 || f.events < 1 || f.maxViewers < 1 {
		return nil, fmt.Errorf("--web-frames %d, --web-events %d, --web-max-viewers %d: each must be at least 1", f.frames, f.events, f.maxViewers)
	}
	cfg := web.Config{Conn: nc, Frames: frames, ResultsPrefix: f.results, RingFrames: f.frames, Events: f.events, MaxViewers: f.maxViewers,
		Privacy: mode, BlurFrame: blurFrame, Log: log}
	if svc != nil {
		cfg.Store, cfg.Gallery = svc.Store, svc.Gallery
	}
	ui, err := web.New(cfg)
	if err != nil {
		return nil, err
	}
	ui.Mount(srv)
	srv.MarkPublic("/", "/ui/", "/favicon.ico") // the static page, assets and icon: a browser loads them before it can send a key
	return ui, nil
}

// webURL is the address to open in a browser: the page of the started server; empty when the UI
// is off (ui nil).
func webURL(srv *httpapi.Server, ui *web.UI) string {
	if ui == nil {
		return ""
	}
	return srv.URL() + web.PagePath
}

// blurFrame is the web view's privacy blur with libjpeg-turbo decoding and encoding around
// privacy.Blur (vision.BlurRegions): 22 ms against 56 ms a 720p frame with two faces for the
// pure-Go default (BenchmarkBlurRegions).
func blurFrame(data []byte, regions []image.Rectangle, quality int) ([]byte, error) {
	return vision.BlurRegions(data, regions, quality, 0, privacy.Blur)
}
