package bus

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSubject(t *testing.T) {
	s, err := Subject(FramesPrefix, "cam-1")
	if err != nil || s != "vigil.frames.cam-1" {
		t.Fatalf("Subject = %q, %v", s, err)
	}
	if _, err := Subject(ResultsPrefix, "a.>"); err == nil {
		t.Fatal("Subject accepted a wildcard stream")
	}
}

func TestEmbeddedServerRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv := &EmbeddedServer{StoreDir: t.TempDir()}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := Connect(ctx, srv.ClientURL(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("vigil.results.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("vigil.results.cam1", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "hi" {
		t.Fatalf("got %v, %v", m, err)
	}
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream not enabled: %v", err)
	}
}

func TestEmbeddedServerPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &EmbeddedServer{Port: l.Addr().(*net.TCPAddr).Port}
	err = srv.Start(context.Background())
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("Start on a busy port = %v, want ErrPortInUse", err)
	}
	srv.Close()
}

func TestConnectRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := Connect(ctx, "nats://"+addr, "test", nil); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
}
