package rtsptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// requireFFmpeg reports why ffmpeg cannot publish, or nil.
func requireFFmpeg() error {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return fmt.Errorf("ffmpeg not installed: %w", err)
	}
	return nil
}

// publisher is one ffmpeg process publishing to the server, with its optional stdin feeder.
type publisher struct {
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed when ffmpeg has exited and been reaped
	cancel context.CancelFunc
	feedWG sync.WaitGroup

	mu sync.Mutex // serialises signals
}

// ffmpegArgs builds the publishing command line.
func ffmpegArgs(url string, o Options) []string {
	args := []string{"-hide_banner", "-loglevel", "warning"}
	if o.Input != nil {
		args = append(args, o.Input...)
	} else {
		args = append(args, "-nostdin", "-re", "-stream_loop", "-1", "-i", o.Video)
	}
	args = append(args, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-pix_fmt", "yuv420p", "-g", strconv.Itoa(o.GOP), "-f", "rtsp", "-rtsp_transport", "tcp", url)
	return args
}

func startPublisher(url string, o Options) (*publisher, error) {
	p := &publisher{stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
	p.cmd = exec.Command("ffmpeg", ffmpegArgs(url, o)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = io.Discard
	var stdin io.WriteCloser
	if o.Feed != nil {
		var err error
		if stdin, err = p.cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("rtsptest: ffmpeg stdin: %w", err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rtsptest: start ffmpeg: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if o.Feed != nil {
		p.feedWG.Add(1)
		go func() {
			defer p.feedWG.Done()
			_ = o.Feed(ctx, stdin)
			_ = stdin.Close()
		}()
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *publisher) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill thaws, kills and reaps ffmpeg and joins the feeder.
func (p *publisher) kill() {
	p.cancel()
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Kill()
	}
	<-p.done
	p.feedWG.Wait()
}

func (p *publisher) signal(stop bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited() {
		return fmt.Errorf("rtsptest: publisher has exited: %s", p.stderr.String())
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("rtsptest: signal publisher: %w", err)
	}
	return nil
}

func (p *publisher) stderrTail() string { return p.stderr.String() }

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// selfSignedTLS makes a server certificate for 127.0.0.1, valid for a day.
func selfSignedTLS() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rtsptest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, nil
}
