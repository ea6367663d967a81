package streams

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/vigil-video/vigil/pkg/admit"
	"github.com/vigil-video/vigil/pkg/frame"
)

// Error is an API error: the HTTP status, a stable machine-readable code and a message for
// people. HTTP answers carry it as {"error": {"code", "message"}}, NATS replies as
// {"ok": false, "error": {"code", "message"}}.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is stable: clients may switch on it.
	Code string
	// Message says what was wrong and what to do.
	Message string
	err     error
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

func newError(status int, code string, cause error, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...), err: cause}
}

// Error codes specific to this API (the sentinel errors map to the others; see AsError).
const (
	CodeNotPush     = "not_push_stream"
	CodeDisabled    = "stream_disabled"
	CodeWrongNode   = "wrong_node"
	CodeMediaType   = "unsupported_media_type"
	CodeNotApplied  = "not_applied"
	CodeUnavailable = "store_unavailable"
	// CodeSourceNotAllowed: the source policy refuses the source (ErrForbidden, 403).
	CodeSourceNotAllowed = "source_not_allowed"
	// CodeServerBusy: the process decodes as many pushed pixels as it may (admit.ErrBusy,
	// 503 with Retry-After).
	CodeServerBusy = "server_busy"
)

// AsError turns any error of the package's operations into an *Error: the sentinels to their
// status and code (ErrInvalid 400 invalid_request, a bad stream name 400 invalid_stream_name,
// ErrNotFound 404 stream_not_found, ErrExists 409 stream_exists, ErrConflict 412
// revision_mismatch, ErrImage 400 invalid_image, ErrTooLarge 413 image_too_large, ErrBusy 429
// stream_busy, ErrLimit 409 too_many_streams, ErrForbidden 403 source_not_allowed), a timeout while the change is applied to 503
// not_applied, anything else (the store unreachable) to 503 store_unavailable.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	msg := err.Error()
	switch {
	case errors.Is(err, ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeSourceNotAllowed, Message: msg, err: err}
	case errors.Is(err, frame.ErrInvalidStream):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_stream_name", Message: msg, err: err}
	case errors.Is(err, ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg, err: err}
	case errors.Is(err, ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "stream_not_found", Message: msg, err: err}
	case errors.Is(err, ErrExists):
		return &Error{Status: http.StatusConflict, Code: "stream_exists", Message: msg + " (PUT replaces it, PATCH changes it)", err: err}
	case errors.Is(err, ErrConflict):
		return &Error{Status: http.StatusPreconditionFailed, Code: "revision_mismatch", Message: msg + ": read it again and retry", err: err}
	case errors.Is(err, ErrImage):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_image", Message: msg, err: err}
	case errors.Is(err, ErrTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "image_too_large", Message: msg, err: err}
	case errors.Is(err, admit.ErrBusy): // the process's decode budget, not this stream's queue
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeServerBusy, Message: msg, err: err}
	case errors.Is(err, ErrBusy):
		return &Error{Status: http.StatusTooManyRequests, Code: "stream_busy", Message: msg, err: err}
	case errors.Is(err, ErrLimit):
		return &Error{Status: http.StatusConflict, Code: "too_many_streams", Message: msg, err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeNotApplied,
			Message: "the change was not confirmed in time (it may still be applied; read the stream to see): " + msg, err: err}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: msg, err: err}
}
