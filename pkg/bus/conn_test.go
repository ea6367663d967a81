package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/vigil-video/vigil/pkg/bus"
	"github.com/vigil-video/vigil/pkg/config"
)

func startAuthServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func dial(t *testing.T, cfg config.NATS) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bus.Dial(ctx, cfg, "test", nil, nil, nats.MaxReconnects(0))
	if err == nil {
		nc.Close()
	}
	return err
}

// TestDialCredentials: user/password, token and nkey credentials reach a real server; wrong ones
// are refused with the server's authorization error; missing files are named.
func TestDialCredentials(t *testing.T) {
	pw := startAuthServer(t, &server.Options{Username: "vigil", Password: "s3cret"})
	if err := dial(t, config.NATS{URL: pw.ClientURL(), User: "vigil", Password: "s3cret"}); err != nil {
		t.Fatalf("user/password: %v", err)
	}
	if err := dial(t, config.NATS{URL: pw.ClientURL(), User: "vigil", Password: "wrong"}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("wrong password: %v", err)
	}

	tok := startAuthServer(t, &server.Options{Authorization: "tok-123"})
	if err := dial(t, config.NATS{URL: tok.ClientURL(), Token: "tok-123"}); err != nil {
		t.Fatalf("token: %v", err)
	}

	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	nk := startAuthServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err := dial(t, config.NATS{URL: nk.ClientURL(), NKeySeedFile: seedFile}); err != nil {
		t.Fatalf("nkey: %v", err)
	}
	if err := dial(t, config.NATS{URL: nk.ClientURL()}); err == nil {
		t.Fatal("no credentials accepted by an nkey server")
	}

	missing := filepath.Join(t.TempDir(), "absent.creds")
	if err := dial(t, config.NATS{URL: nk.ClientURL(), CredsFile: missing}); err == nil || !strings.Contains(err.Error(), "creds file") || !strings.Contains(err.Error(), "absent.creds") {
		t.Fatalf("missing creds file: %v", err)
	}
	if err := dial(t, config.NATS{URL: nk.ClientURL(), Token: "a", CredsFile: missing}); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Fatalf("two credentials: %v", err)
	}
}

// TestDialTLS: a server requiring TLS with client certificates accepts a client with the CA and
// a certificate, and refuses one without the certificate.
func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCert(t, dir, "ca", nil, nil)
	makeCert(t, dir, "server", ca, caKey)
	makeCert(t, dir, "client", ca, caKey)
	p := func(n string) string { return filepath.Join(dir, n) }
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p("server.pem"), KeyFile: p("server-key.pem"), CaFile: p("ca.pem"), Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s := startAuthServer(t, &server.Options{TLSConfig: tc, TLSVerify: true, TLSTimeout: 2})
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	ok := config.NATS{URL: url, TLS: config.TLS{CAFile: p("ca.pem"), CertFile: p("client.pem"), KeyFile: p("client-key.pem")}}
	if err := dial(t, ok); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	noCert := config.NATS{URL: url, TLS: config.TLS{CAFile: p("ca.pem")}}
	if err := dial(t, noCert); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	noCA := config.NATS{URL: url, TLS: config.TLS{CertFile: p("client.pem"), KeyFile: p("client-key.pem")}}
	if err := dial(t, noCA); err == nil {
		t.Fatal("a server certificate from an unknown CA was accepted")
	}
}

// makeCert writes name.pem and name-key.pem into dir, signed by parent (self-signed CA when nil).
func makeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vigil-test-" + name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", kb)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// TestDrainDeliversBuffered: Drain lets a subscription finish what it holds and waits for the
// connection to close.
func TestDrainDeliversBuffered(t *testing.T) {
	srv := &bus.EmbeddedServer{}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	sub, err := bus.Connect(ctx, srv.ClientURL(), "sub", nil)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	got := 0
	if _, err := sub.Subscribe("x", func(*nats.Msg) { <-release; got++ }); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.Connect(ctx, srv.ClientURL(), "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		_ = pub.Publish("x", []byte("m"))
	}
	if err := bus.Drain(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if !pub.IsClosed() {
		t.Fatal("publisher not closed after Drain")
	}
	close(release)
	if err := bus.Drain(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if got != 50 {
		t.Fatalf("subscriber handled %d of 50 messages before closing", got)
	}
	if err := bus.Drain(ctx, sub); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
}
