package cli

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
)

// TestEmbeddedNATSCredentials: vigil run's NATS needs no login on loopback; listening elsewhere
// it requires one, generating and printing it when none is given, and the roles' client
// settings carry it.
func TestEmbeddedNATSCredentials(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	var out strings.Builder
	srv, client, err := startEmbeddedNATS(ctx, config.Run{NATSHost: "127.0.0.1"}, config.NATS{}, "", quiet, &out)
	if err != nil {
		t.Fatal(err)
	}
	if client.User != "" || out.Len() != 0 {
		t.Errorf("loopback: user %q, printed %q; want no login", client.User, out.String())
	}
	srv.Close()

	srv, client, err = startEmbeddedNATS(ctx, config.Run{NATSHost: "0.0.0.0"}, config.NATS{}, "", quiet, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if client.User != embeddedUser || len(client.Password) < 24 {
		t.Fatalf("generated credentials: %q / %d characters", client.User, len(client.Password))
	}
	if !strings.Contains(out.String(), client.Password) || !strings.Contains(out.String(), "--nats-user vigil") {
		t.Fatalf("the generated login was not printed with how to use it:\n%s", out.String())
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.Timeout(5*time.Second), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client reached a NATS listening on every interface")
	}
	nc, err := bus.Dial(ctx, client, "test", quiet, nil)
	if err != nil {
		t.Fatalf("the roles' settings do not connect: %v", err)
	}
	nc.Close()

	out.Reset()
	srv2, client2, err := startEmbeddedNATS(ctx, config.Run{NATSHost: "0.0.0.0"}, config.NATS{User: "ops", Password: "given-pw"}, "", quiet, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if client2.User != "ops" || client2.Password != "given-pw" || strings.Contains(out.String(), "given-pw") {
		t.Fatalf("given credentials: %+v, printed %q", client2, out.String())
	}
}
