package bus

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vigil-video/vigil/pkg/config"
)

// TestEmbeddedServerAuth: an embedded server reachable from other machines refuses to start
// without credentials; with them, clients without the password are refused.
func TestEmbeddedServerAuth(t *testing.T) {
	ctx := context.Background()
	for _, host := range []string{"0.0.0.0", "::", "192.0.2.1"} {
		srv := &EmbeddedServer{Host: host, Logger: slog.New(slog.DiscardHandler)}
		if err := srv.Start(ctx); err == nil || !strings.Contains(err.Error(), "user and password") {
			srv.Close()
			t.Errorf("host %s without credentials: %v, want a refusal", host, err)
		}
	}
	if err := (&EmbeddedServer{User: "u"}).Start(ctx); err == nil {
		t.Error("a user without a password was accepted")
	}
	srv := &EmbeddedServer{Host: "0.0.0.0", User: "vigil", Password: "s3cret-pw", Logger: slog.New(slog.DiscardHandler)}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if nc, err := nats.Connect(srv.ClientURL(), nats.Timeout(5*time.Second), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("vigil", "wrong"), nats.Timeout(5*time.Second), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client with a wrong password connected")
	}
	nc, err := Dial(ctx, config.NATS{URL: srv.ClientURL(), User: "vigil", Password: "s3cret-pw"}, "test", nil, nil)
	if err != nil {
		t.Fatalf("with the credentials: %v", err)
	}
	nc.Close()
	for host, want := range map[string]bool{"127.0.0.1": true, "localhost": true, "::1": true, "[::1]": true, "127.1.2.3": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "vigil.example": false} {
		if IsLoopback(host) != want {
			t.Errorf("IsLoopback(%q) = %v", host, !want)
		}
	}
}
