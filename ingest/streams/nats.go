package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ServeNATS answers stream-management requests (Request → Reply, as JSON) on ControlSubject in
// the queue group ControlQueue, on nc, until Close. Start the Registry first. Requests are
// answered one at a time; each waits at most ApplyTimeout for its change to be applied.
// Messages without a reply subject are ignored.
func (r *Registry) ServeNATS(nc *nats.Conn) error {
	if err := r.started(); err != nil {
		return err
	}
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.closed {
		return errors.New("streams: registry closed")
	}
	if r.sub != nil {
		return errors.New("streams: already serving NATS requests")
	}
	sub, err := nc.QueueSubscribe(ControlSubject, ControlQueue, r.onRequest)
	if err != nil {
		return fmt.Errorf("streams: subscribe %s: %w", ControlSubject, err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("streams: subscribe %s: %w", ControlSubject, err)
	}
	r.sub = sub
	return nil
}

func (r *Registry) onRequest(m *nats.Msg) {
	r.subMu.Lock()
	if r.closed {
		r.subMu.Unlock()
		return
	}
	r.inFlite.Add(1)
	r.subMu.Unlock()
	defer r.inFlite.Done()
	if m.Reply == "" {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.ApplyTimeout)
	defer cancel()
	reply := r.Handle(ctx, m.Data)
	b, err := json.Marshal(reply)
	if err != nil {
		b, _ = json.Marshal(Reply{Error: &ReplyError{Code: "internal", Message: err.Error()}})
	}
	if err := m.Respond(b); err != nil {
		r.Log.Warn("streams: answering a control request failed", "err", err)
	}
}

// Handle answers one control request (the JSON of a Request), as ServeNATS does; ctx bounds the
// wait for the change to be applied.
func (r *Registry) Handle(ctx context.Context, data []byte) Reply {
	fail := func(err error) Reply {
		e := AsError(err)
		return Reply{Error: &ReplyError{Code: e.Code, Message: e.Message}}
	}
	req, err := ParseRequest(data)
	if err != nil {
		return fail(err)
	}
	one := func(st Status, err error) Reply {
		if err != nil {
			return fail(err)
		}
		return Reply{OK: true, Stream: &st}
	}
	switch req.Op {
	case OpList:
		return Reply{OK: true, Streams: r.List()}
	case OpGet:
		return one(r.Get(req.Name))
	case OpCreate:
		return one(r.Create(ctx, req.spec))
	case OpPut:
		st, _, err := r.Put(ctx, req.Name, req.spec, req.Revision)
		return one(st, err)
	case OpPatch:
		return one(r.Patch(ctx, req.Name, req.patch, req.Revision))
	case OpDelete:
		if err := r.Delete(ctx, req.Name, req.Revision); err != nil {
			return fail(err)
		}
		return Reply{OK: true}
	}
	return fail(fmt.Errorf("%w: unknown op", ErrInvalid))
}
