package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// The pieces every component's handlers begin and end with: a deadline on the request's work,
// a body read within a limit, an error mapped to its answer, and the read handler that puts
// them together. Each answers exactly as the handlers did when they spelled it out.

// Deadline returns r's context bounded by d, or by def when d is not positive. The caller
// cancels it.
func Deadline(r *http.Request, d, def time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = def
	}
	return context.WithTimeout(r.Context(), d)
}

// ReadBody reads r's whole body, at most limit bytes. When it cannot, it has answered and
// returns false: 413 body_too_large (WriteLimitExceeded, naming setting; "" for a fixed limit)
// for a longer body, whether the server's limit or this one stopped it, and 400
// invalid_request for a read that failed.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64, setting string) ([]byte, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		if IsBodyTooLarge(err) {
			WriteLimitExceeded(w, limit, setting)
			return nil, false
		}
		WriteError(w, http.StatusBadRequest, "invalid_request", "reading the body: "+err.Error())
		return nil, false
	}
	if int64(len(data)) > limit {
		WriteLimitExceeded(w, limit, setting)
		return nil, false
	}
	return data, true
}

// ErrorCase is the answer to the errors that match Err (errors.Is; a nil Err matches every
// error): Status, Code, and Message or, when Message is empty, the error's text.
type ErrorCase struct {
	Err     error
	Status  int
	Code    string
	Message string
}

// WriteErrorCase answers err with the first of cases that matches it (WriteError); when none
// does, with 500 "internal" and the error's text. End cases with a nil Err for a default.
func WriteErrorCase(w http.ResponseWriter, err error, cases ...ErrorCase) {
	for _, c := range cases {
		if c.Err == nil || errors.Is(err, c.Err) {
			msg := c.Message
			if msg == "" {
				msg = err.Error()
			}
			WriteError(w, c.Status, c.Code, msg)
			return
		}
	}
	WriteError(w, http.StatusInternalServerError, "internal", err.Error())
}

// Query returns a handler that answers JSON: do runs with r under Deadline(r, timeout, def);
// what it returns is written with status 200 (WriteJSON), its error with fail.
func Query[T any](timeout, def time.Duration, fail func(http.ResponseWriter, error), do func(context.Context, *http.Request) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := Deadline(r, timeout, def)
		defer cancel()
		v, err := do(ctx, r)
		if err != nil {
			fail(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, v)
	}
}
