package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect dials url (a comma-separated server list) as client name, retrying until ctx ends or
// the first attempt's 5 s timeout passes, and logs disconnects, reconnects and slow-consumer
// errors through log. The caller owns the connection and must Drain or Close it.
func Connect(ctx context.Context, url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "client", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "client", name, "url", c.ConnectedUrl()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "client", name, "subject", subj, "err", err)
		}),
	}
	opts = append(opts, extra...)
	type res struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		ch <- res{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", url, r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		r := <-ch // nats.Connect ends by its own timeout
		if r.nc != nil {
			r.nc.Close()
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, ctx.Err())
	}
}
