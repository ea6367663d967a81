package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedServer is a NATS server running inside this process, for `vigil run` and tests.
// Fill the exported fields, call Start, and Close when done.
type EmbeddedServer struct {
	// Host is the listen address. Default "127.0.0.1".
	Host string
	// Port is the client port; 0 picks a free port. `vigil run` uses 4222.
	Port int
	// User and Password, when set, are required of every client. A server whose Host is not a
	// loopback address refuses to start without them: anyone who can reach it would read every
	// frame, embedding and stored secret. Default none (loopback only).
	User, Password string
	// StoreDir enables JetStream with file storage in this directory when non-empty.
	StoreDir string
	// ReadyTimeout bounds how long Start waits for the server to accept clients. Default 10s.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines at debug level (warnings and errors at their own
	// level). Default slog.Default().
	Logger *slog.Logger

	srv *server.Server
}

// ErrPortInUse is wrapped by Start when the configured port cannot be bound.
var ErrPortInUse = errors.New("NATS port in use")

// Start launches the server and waits until it accepts clients.
func (e *EmbeddedServer) Start(ctx context.Context) error {
	if e.Host == "" {
		e.Host = "127.0.0.1"
	}
	if e.ReadyTimeout == 0 {
		e.ReadyTimeout = 10 * time.Second
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if (e.User == "") != (e.Password == "") {
		return errors.New("embedded NATS: give both a user and a password, or neither")
	}
	if e.User == "" && !IsLoopback(e.Host) {
		return fmt.Errorf("embedded NATS: listening on %s, reachable from other machines, needs a user and password", e.Host)
	}
	port := e.Port
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// nats-server only logs a failed listen; probe first so the user gets a precise error.
		addr := net.JoinHostPort(e.Host, strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%w: cannot listen on %s (%v): stop the other server or pass --nats-port 0 for a free port, or --nats-url to use a running NATS", ErrPortInUse, addr, err)
		}
		_ = l.Close()
	}
	opts := &server.Options{
		ServerName: "vigil-embedded",
		Host:       e.Host,
		Port:       port,
		NoSigs:     true,
		MaxPayload: 8 << 20,
		HTTPPort:   0,
	}
	if e.User != "" {
		opts.Username, opts.Password = e.User, e.Password
	}
	if e.StoreDir != "" {
		opts.JetStream = true
		opts.StoreDir = e.StoreDir
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	srv.SetLoggerV2(slogLogger{e.Logger}, false, false, false)
	srv.Start()
	deadline := time.Now().Add(e.ReadyTimeout)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			srv.Shutdown()
			srv.WaitForShutdown()
			if ctx.Err() != nil {
				return fmt.Errorf("embedded NATS: %w", ctx.Err())
			}
			return fmt.Errorf("%w: embedded NATS on %s:%d not ready after %s", ErrPortInUse, e.Host, e.Port, e.ReadyTimeout)
		}
	}
	e.srv = srv
	return nil
}

// IsLoopback reports whether host (a listen address without port) is reachable from this
// machine only: "localhost" or a loopback IP. "", "0.0.0.0" and "::" listen everywhere.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

// ClientURL is the URL clients connect to (without credentials); empty before Start.
func (e *EmbeddedServer) ClientURL() string {
	if e.srv == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Subscriptions returns the subscriptions a message on subject (a literal subject) would reach,
// each with its queue group ("" for none): what tests and diagnostics count. Empty before
// Start.
func (e *EmbeddedServer) Subscriptions(subject string) ([]server.SubDetail, error) {
	if e.srv == nil {
		return nil, nil
	}
	sz, err := e.srv.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject, Limit: 1 << 16})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: subscriptions of %s: %w", subject, err)
	}
	return sz.Subs, nil
}

// Close shuts the server down and waits until it has stopped. Safe to call more than once.
func (e *EmbeddedServer) Close() {
	if e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.srv = nil
}

// slogLogger adapts slog to nats-server's Logger. Fatalf logs an error and never exits: the
// owner of the server decides what a failure means.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Noticef(format string, v ...any) { s.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Warnf(format string, v ...any)   { s.l.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Fatalf(format string, v ...any)  { s.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Errorf(format string, v ...any)  { s.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Debugf(format string, v ...any)  {}
func (s slogLogger) Tracef(format string, v ...any)  {}
