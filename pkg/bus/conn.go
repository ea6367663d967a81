package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/config"
)

// Connect dials url (a comma-separated server list) as client name, retrying until ctx ends or
// the first attempt's 5 s timeout passes, and logs disconnects, reconnects and slow-consumer
// errors through log. The caller owns the connection and must Drain or Close it.
func Connect(ctx context.Context, url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	return connect(ctx, url, name, log, nil, extra)
}

// Events counts a connection's notable events; Dial fills one so metrics can export it. The
// zero value is ready to use.
type Events struct {
	// SlowConsumers counts slow-consumer notifications: a subscription's pending buffer was
	// full and the client dropped messages (each episode once, as nats.go reports it).
	SlowConsumers atomic.Uint64
	// Disconnects and Reconnects count losses of the server and recoveries.
	Disconnects, Reconnects atomic.Uint64
	// AsyncErrors counts every asynchronous error, slow consumers included.
	AsyncErrors atomic.Uint64
}

// Dial connects as client name to the servers, credentials and TLS in cfg (see Connect for the
// retry and logging behaviour), counting events into ev when it is not nil. Credential and
// certificate files are checked before dialling, so a missing file is reported as such rather
// than as a refused connection.
func Dial(ctx context.Context, cfg config.NATS, name string, log *slog.Logger, ev *Events, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := ClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	return connect(ctx, cfg.URL, name, log, ev, append(opts, extra...))
}

// ClientOptions turns cfg's credentials and TLS settings into nats.Options. It fails when a
// named file is missing or unreadable, or when cfg sets more than one credential.
func ClientOptions(cfg config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	readable := func(what, path string) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("nats %s: %w", what, err)
		}
		return f.Close()
	}
	n := 0
	for _, set := range []bool{cfg.User != "" || cfg.Password != "", cfg.Token != "", cfg.NKeySeedFile != "", cfg.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("nats: more than one of user/password, token, nkey seed file and creds file is set: choose one")
	}
	if cfg.User != "" || cfg.Password != "" {
		if cfg.User == "" {
			return nil, errors.New("nats: a password needs a user")
		}
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.NKeySeedFile != "" {
		if err := readable("nkey seed file", cfg.NKeySeedFile); err != nil {
			return nil, err
		}
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed file %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.CredsFile != "" {
		if err := readable("creds file", cfg.CredsFile); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if t := cfg.TLS; t.Enabled() {
		if t.CAFile != "" {
			if err := readable("TLS CA file", t.CAFile); err != nil {
				return nil, err
			}
			opts = append(opts, nats.RootCAs(t.CAFile))
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			return nil, errors.New("nats: TLS cert file and key file go together: set both or neither")
		}
		if t.CertFile != "" {
			for what, p := range map[string]string{"TLS cert file": t.CertFile, "TLS key file": t.KeyFile} {
				if err := readable(what, p); err != nil {
					return nil, err
				}
			}
			opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
		}
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}

func connect(ctx context.Context, url, name string, log *slog.Logger, ev *Events, extra []nats.Option) (*nats.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	if ev == nil {
		ev = new(Events)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			ev.Disconnects.Add(1)
			if err != nil {
				log.Warn("nats disconnected", "client", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			ev.Reconnects.Add(1)
			log.Info("nats reconnected", "client", name, "url", c.ConnectedUrl())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev.AsyncErrors.Add(1)
			if errors.Is(err, nats.ErrSlowConsumer) {
				ev.SlowConsumers.Add(1)
			}
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
	shown := redactURL(url)
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", shown, r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		r := <-ch // nats.Connect ends by its own timeout
		if r.nc != nil {
			r.nc.Close()
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", shown, ctx.Err())
	}
}

// redactURL hides passwords and tokens embedded in server URLs (nats://user:pass@host).
func redactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "<redacted>" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// Drain drains nc (subscriptions stop taking messages and finish the ones buffered, then
// everything published is flushed) and waits until the connection has closed or ctx ends, in
// which case it closes nc at once. Publishers call it on shutdown instead of Close.
func Drain(ctx context.Context, nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("nats drain: %w", err)
	}
	select {
	case <-closed:
		if err := nc.LastError(); err != nil && errors.Is(err, nats.ErrDrainTimeout) {
			return fmt.Errorf("nats drain: %w", err)
		}
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("nats drain: %w", ctx.Err())
	}
}
