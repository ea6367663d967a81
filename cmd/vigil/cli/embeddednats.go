package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
)

// embeddedUser is the user name vigil run generates credentials for when none are given.
const embeddedUser = "vigil"

// startEmbeddedNATS starts vigil run's NATS server on run's host and port with JetStream in
// storeDir, and returns it with the client settings the roles dial it with. On a loopback host
// (the default) no credentials are needed: only this machine reaches it. On any other host every
// client must log in: with creds' user and password when given (nats.user, nats.password,
// --nats-user, --nats-password), else with user "vigil" and a generated password, which is
// printed once on stderr with how to connect (it lasts for this run only).
func startEmbeddedNATS(ctx context.Context, run config.Run, creds config.NATS, storeDir string, log *slog.Logger, stderr io.Writer) (*bus.EmbeddedServer, config.NATS, error) {
	srv := &bus.EmbeddedServer{Host: run.NATSHost, Port: run.NATSPort, StoreDir: storeDir, Logger: log}
	generated := false
	if creds.User != "" || creds.Password != "" || !bus.IsLoopback(run.NATSHost) {
		srv.User, srv.Password = creds.User, creds.Password
		if srv.User == "" && srv.Password == "" {
			pw, err := randomPassword()
			if err != nil {
				return nil, config.NATS{}, err
			}
			srv.User, srv.Password, generated = embeddedUser, pw, true
		}
	}
	if err := srv.Start(ctx); err != nil {
		return nil, config.NATS{}, err
	}
	client := config.NATS{URL: srv.ClientURL(), User: srv.User, Password: srv.Password}
	if generated {
		port := strconv.Itoa(run.NATSPort)
		if u, err := parseHostPort(srv.ClientURL()); err == nil {
			port = u
		}
		fmt.Fprintf(stderr, "NATS listens on %s and requires a login. Generated for this run (pass --nats-user/--nats-password, or VIGIL_NATS_PASSWORD, to choose your own):\n"+
			"  user %s  password %s\n"+
			"  connect: vigil sink --nats-url nats://<this-host>:%s --nats-user %s --nats-password <password>  (or nats://%s:<password>@<this-host>:%s)\n",
			net.JoinHostPort(run.NATSHost, port), srv.User, srv.Password, port, srv.User, srv.User, port)
	}
	return srv, client, nil
}

// parseHostPort returns the port of a nats://host:port URL.
func parseHostPort(u string) (string, error) {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == ':' {
			return u[i+1:], nil
		}
	}
	return "", fmt.Errorf("no port in %q", u)
}

// randomPassword returns 24 random bytes, URL-safe base64 (usable in a URL without escaping).
func randomPassword() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating the NATS password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
