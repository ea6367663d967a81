package whip

import (
	"context"
	_ "embed" // the publish page
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/pkg/frame"
	"github.com/vigil-video/vigil/pkg/httpapi"
)

//go:embed publish.html
var publishPage []byte

// Error codes of the JSON error bodies (httpapi.Error.Code) the endpoint answers with.
const (
	CodeInvalidStream    = "invalid_stream"         // 400: the stream name is not [A-Za-z0-9_-]{1,64}
	CodeInvalidOffer     = "invalid_offer"          // 400: the body is not a usable SDP offer
	CodeUnsupportedMedia = "unsupported_media_type" // 415: Content-Type is not application/sdp
	CodeOfferTooLarge    = "offer_too_large"        // 413: the body exceeds MaxOfferBytes
	CodeUnavailable      = "unavailable"            // 503: session limit reached, or shutting down
	CodeRefused          = "refused"                // 403: the consumer refused the stream
	CodeNoSession        = "no_session"             // 404: DELETE of an unknown or ended session
	CodeInternal         = "internal"               // 500
)

// Mount mounts the endpoint's routes on srv; call it after Initialize and before srv.Start:
//
//	POST   /whip/{stream}            SDP offer in, 201 + SDP answer + Location: /whip/{stream}/{session}
//	DELETE /whip/{stream}/{session}  ends the session (200)
//	GET    /publish/{stream}         a page that publishes the user's camera to /whip/{stream}
//
// Errors are httpapi JSON errors with the Code* codes. The routes are added to the server's
// OpenAPI document.
func (e *Endpoint) Mount(srv *httpapi.Server) {
	srv.Describe(e.doc())
	srv.HandleFunc("POST /whip/{stream}", e.handleOffer)
	srv.HandleFunc("DELETE /whip/{stream}/{session}", e.handleDelete)
	srv.HandleFunc("GET /publish/{stream}", e.handlePage)
}

func (e *Endpoint) handleOffer(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := frame.ValidateStream(stream); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, CodeInvalidStream, err.Error())
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		httpapi.WriteError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type %q: send the SDP offer as application/sdp", r.Header.Get("Content-Type")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.MaxOfferBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpapi.WriteError(w, http.StatusRequestEntityTooLarge, CodeOfferTooLarge,
				fmt.Sprintf("the offer exceeds %d bytes", e.MaxOfferBytes))
			return
		}
		httpapi.WriteError(w, http.StatusBadRequest, CodeInvalidOffer, "reading the offer: "+err.Error())
		return
	}
	offer := string(body)
	if _, err := CheckOffer(offer); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, CodeInvalidOffer, err.Error())
		return
	}
	if err := e.reserve(); err != nil {
		if errors.Is(err, errFull) {
			w.Header().Set("Retry-After", "5")
			err = fmt.Errorf("%w (at most %d)", err, e.MaxSessions)
		}
		httpapi.WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	s, err := e.newSession(stream)
	if err != nil {
		httpapi.WriteError(w, http.StatusInternalServerError, CodeInternal, err.Error())
		return
	}
	answer, status, err := s.negotiate(r.Context(), offer)
	if err != nil {
		s.Stop(fmt.Errorf("%w: negotiation failed: %w", ErrEnded, err))
		<-s.closed
		code := CodeInvalidOffer
		if status == http.StatusInternalServerError {
			code = CodeInternal
		}
		httpapi.WriteError(w, status, code, err.Error())
		return
	}
	old, err := e.register(s)
	if err != nil {
		s.Stop(fmt.Errorf("%w: %w", ErrEnded, err))
		<-s.closed
		httpapi.WriteError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
		return
	}
	if old != nil {
		old.Stop(fmt.Errorf("%w: replaced by a new publisher (session %s)", ErrEnded, s.id))
	}
	if err := e.OnSession(s); err != nil {
		s.Stop(fmt.Errorf("%w: refused: %w", ErrEnded, err))
		<-s.closed
		httpapi.WriteError(w, http.StatusForbidden, CodeRefused, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+stream+"/"+s.id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// negotiate applies the offer and returns the answer to send, with every local candidate and the
// start bitrate in it. On error it also returns the HTTP status that fits.
func (s *Session) negotiate(ctx context.Context, offer string) (string, int, error) {
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("offer rejected: %w", err)
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("cannot answer the offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return "", http.StatusInternalServerError, fmt.Errorf("set local description: %w", err)
	}
	t := time.NewTimer(s.e.AnswerTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return "", http.StatusInternalServerError, fmt.Errorf("ICE candidates not gathered within %s", s.e.AnswerTimeout)
	case <-ctx.Done():
		return "", http.StatusBadRequest, fmt.Errorf("request ended: %w", ctx.Err())
	}
	local := s.pc.LocalDescription()
	if local == nil {
		return "", http.StatusInternalServerError, errors.New("no local description")
	}
	codecs, err := answerCodecs(local.SDP)
	if err != nil {
		return "", http.StatusInternalServerError, err
	}
	if len(codecs) == 0 {
		return "", http.StatusBadRequest, errors.New("no video format in common: the offer's VP8/H264 parameters match none the endpoint accepts (H264 needs packetization-mode=1 and a baseline, main or high profile)")
	}
	out, err := SetStartBitrate(local.SDP, s.e.StartBitrateKbps)
	if err != nil {
		return "", http.StatusInternalServerError, err
	}
	return out, 0, nil
}

func (e *Endpoint) handleDelete(w http.ResponseWriter, r *http.Request) {
	stream, id := r.PathValue("stream"), r.PathValue("session")
	if err := frame.ValidateStream(stream); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, CodeInvalidStream, err.Error())
		return
	}
	s := e.lookup(id)
	if s == nil || s.stream != stream {
		httpapi.WriteError(w, http.StatusNotFound, CodeNoSession, fmt.Sprintf("no live session %q on stream %s", id, stream))
		return
	}
	s.Stop(fmt.Errorf("%w: the publisher ended the session (DELETE)", ErrEnded))
	w.WriteHeader(http.StatusOK)
}

func (e *Endpoint) handlePage(w http.ResponseWriter, r *http.Request) {
	if err := frame.ValidateStream(r.PathValue("stream")); err != nil {
		httpapi.WriteError(w, http.StatusBadRequest, CodeInvalidStream, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Everything is in the page; it talks to this origin only.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' mediastream: blob:")
	_, _ = w.Write(publishPage)
}
