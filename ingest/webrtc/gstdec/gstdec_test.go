package gstdec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/sys/unix"

	"github.com/vigil-video/vigil/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// encodeRTP has ffmpeg encode a test pattern with codec and packetize it as RTP (payload type
// pt, at most 1200 bytes a packet), sent over loopback UDP to the test, and returns the packets
// in arrival order.
func encodeRTP(t testing.TB, codec Codec, pt uint8, size string, frames int) [][]byte {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(8 << 20)
	var enc []string
	switch codec {
	case VP8:
		enc = []string{"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M"}
	case H264:
		// dump_extra repeats SPS/PPS in band, as WebRTC senders do.
		enc = []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
			"-b:v", "2M", "-bsf:v", "dump_extra"}
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=30",
		"-frames:v", fmt.Sprint(frames), "-pix_fmt", "yuv420p", "-g", "30"}
	args = append(args, enc...)
	args = append(args, "-payload_type", fmt.Sprint(pt), "-f", "rtp",
		fmt.Sprintf("rtp://127.0.0.1:%d?pkt_size=1200", conn.LocalAddr().(*net.UDPAddr).Port))
	cmd := exec.Command("ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("ffmpeg (install it with apt-get install ffmpeg): %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var pkts [][]byte
	buf := make([]byte, 2048)
	done := false
	for {
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			pkts = append(pkts, bytes.Clone(buf[:n]))
			continue
		}
		if done {
			break
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
			}
			done = true
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Fatal("ffmpeg did not finish within 30 s")
		default:
		}
	}
	if len(pkts) == 0 {
		t.Fatalf("ffmpeg sent no RTP: %s", stderr.String())
	}
	return pkts
}

// collector gathers the frames Run emits.
type collector struct {
	mu     sync.Mutex
	frames int
	sizes  map[[2]int]int
	first  chan struct{}
	once   sync.Once
}

func newCollector() *collector {
	return &collector{sizes: map[[2]int]int{}, first: make(chan struct{})}
}

func (c *collector) emit(m gocv.Mat) {
	c.mu.Lock()
	c.frames++
	c.sizes[[2]int{m.Cols(), m.Rows()}]++
	c.mu.Unlock()
	m.Close()
	c.once.Do(func() { close(c.first) })
}

// runResult is Run's outcome, once it returned.
type runResult struct {
	done chan struct{}
	err  error
}

// runDecoder runs d in a goroutine that the test's cleanup ends (CloseWrite) and joins.
func runDecoder(t *testing.T, d *Decoder, c *collector) *runResult {
	t.Helper()
	res := &runResult{done: make(chan struct{})}
	go func() {
		defer close(res.done)
		res.err = d.Run(c.emit)
	}()
	t.Cleanup(func() {
		d.CloseWrite()
		select {
		case <-res.done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20 s of CloseWrite")
		}
	})
	return res
}

func waitRun(t *testing.T, res *runResult) error {
	t.Helper()
	select {
	case <-res.done:
		return res.err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s")
		return nil
	}
}

func TestDecode(t *testing.T) {
	for _, codec := range []Codec{VP8, H264} {
		t.Run(string(codec), func(t *testing.T) {
			const pt = 101 // not ffmpeg's default, so a wrong payload type in the caps would show
			pkts := encodeRTP(t, codec, pt, "320x240", 30)
			d, err := New(codec, pt)
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector()
			res := runDecoder(t, d, c)
			for i, p := range pkts {
				if err := d.WriteRTP(p); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
			}
			if err := d.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if err := waitRun(t, res); err != nil {
				t.Fatalf("Run after CloseWrite: %v", err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			// The appsink drops frames a slow reader misses, so not every frame need arrive.
			if c.frames < 10 || len(c.sizes) != 1 || c.sizes[[2]int{320, 240}] != c.frames {
				t.Fatalf("%d frames of sizes %v, want >= 10 of 320x240", c.frames, c.sizes)
			}
			t.Logf("%d RTP packets -> %d frames", len(pkts), c.frames)
		})
	}
}

// A stream that ends before its first frame ends Run cleanly, without a frame.
func TestCloseBeforeData(t *testing.T) {
	d, err := New(VP8, 96)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	res := runDecoder(t, d, c)
	if err := d.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := waitRun(t, res); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c.frames != 0 {
		t.Fatalf("%d frames from an empty stream", c.frames)
	}
	if err := d.WriteRTP([]byte{0x80, 96, 0, 1}); err == nil {
		t.Fatal("WriteRTP after CloseWrite succeeded")
	}
}

// Garbage in the RTP stream produces no frames and no crash; the stream still ends cleanly, and
// the decoder recovers when real packets follow.
func TestGarbageThenReal(t *testing.T) {
	pkts := encodeRTP(t, VP8, 96, "160x120", 15)
	d, err := New(VP8, 96)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	res := runDecoder(t, d, c)
	junk := make([]byte, 900)
	for i := range 50 {
		for j := range junk {
			junk[j] = byte(i*31 + j*7)
		}
		if err := d.WriteRTP(junk[:1+i*17]); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pkts {
		if err := d.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-c.first:
	case <-res.done:
		t.Fatalf("Run returned %v before any frame", res.err)
	case <-time.After(20 * time.Second):
		t.Fatal("no frame within 20 s")
	}
	d.CloseWrite()
	if err := waitRun(t, res); err != nil && !errors.Is(err, ErrStopped) {
		t.Fatalf("Run: %v", err)
	}
}

// CloseWrite unblocks a WriteRTP waiting on a full pipe (nothing reads it: Run never started).
func TestCloseWriteUnblocksWriter(t *testing.T) {
	d, err := New(VP8, 96)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pkt := make([]byte, 1200)
	pkt[0] = 0x80
	errc := make(chan error, 1)
	go func() {
		for {
			if err := d.WriteRTP(pkt); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Poll until the writer is blocked: the pipe is (nearly) full.
	full, err := unix.FcntlInt(d.r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		queued, err := unix.IoctlGetInt(int(d.r.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if queued >= full*3/4 { // Linux packs three 1202-byte writes into each 4 KiB page
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe holds %d of %d bytes after 10 s", queued, full)
		}
		select {
		case err := <-errc:
			t.Fatalf("writer failed before Close: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "write RTP") {
			t.Fatalf("writer returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WriteRTP still blocked 5 s after Close")
	}
}

func TestPipeline(t *testing.T) {
	p, err := Pipeline(VP8, 100, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fdsrc fd=7 ", "encoding-name=VP8", "payload=100", "rtpvp8depay ! vp8dec", "appsink drop=true max-buffers=2 sync=false"} {
		if !strings.Contains(p, want) {
			t.Errorf("pipeline %q lacks %q", p, want)
		}
	}
	p, _ = Pipeline(H264, 102, 3)
	if !strings.Contains(p, "rtph264depay ! h264parse ! avdec_h264") || !strings.Contains(p, "encoding-name=H264") {
		t.Errorf("H.264 pipeline %q", p)
	}
	if _, err := Pipeline("VP9", 96, 3); err == nil {
		t.Error("VP9 accepted")
	}
	if _, err := Pipeline(VP8, 128, 3); err == nil {
		t.Error("payload type 128 accepted")
	}
	for in, want := range map[string]Codec{"VP8": VP8, "video/vp8": VP8, "video/H264": H264, "h264": H264} {
		if got, err := ParseCodec(in); err != nil || got != want {
			t.Errorf("ParseCodec(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseCodec("video/AV1"); err == nil {
		t.Error("AV1 accepted")
	}
}

func TestAppendFrame(t *testing.T) {
	got := AppendFrame([]byte{9}, []byte{1, 2, 3})
	if !bytes.Equal(got, []byte{9, 0, 3, 1, 2, 3}) {
		t.Fatalf("AppendFrame = %v", got)
	}
	big := make([]byte, MaxPacket)
	f := AppendFrame(nil, big)
	if binary.BigEndian.Uint16(f) != MaxPacket || len(f) != MaxPacket+2 {
		t.Fatalf("frame of a %d-byte packet: prefix %d, length %d", MaxPacket, binary.BigEndian.Uint16(f), len(f))
	}
}

// A publisher may change resolution mid-stream (a browser adapting to load or bandwidth): the
// frames after the change come out at the new size.
func TestResolutionChange(t *testing.T) {
	for _, codec := range []Codec{VP8, H264} {
		t.Run(string(codec), func(t *testing.T) {
			a := encodeRTP(t, codec, 96, "320x240", 15)
			b := encodeRTP(t, codec, 96, "160x120", 15)
			// Continue b's sequence numbers and timestamps after a's, as one sender would.
			lastSeq := binary.BigEndian.Uint16(a[len(a)-1][2:4])
			lastTS := binary.BigEndian.Uint32(a[len(a)-1][4:8])
			seq0, ts0 := binary.BigEndian.Uint16(b[0][2:4]), binary.BigEndian.Uint32(b[0][4:8])
			ssrc := binary.BigEndian.Uint32(a[0][8:12])
			for _, p := range b {
				binary.BigEndian.PutUint16(p[2:4], binary.BigEndian.Uint16(p[2:4])-seq0+lastSeq+1)
				binary.BigEndian.PutUint32(p[4:8], binary.BigEndian.Uint32(p[4:8])-ts0+lastTS+3000)
				binary.BigEndian.PutUint32(p[8:12], ssrc)
			}
			d, err := New(codec, 96)
			if err != nil {
				t.Fatal(err)
			}
			c := newCollector()
			res := runDecoder(t, d, c)
			for _, p := range append(a, b...) {
				if err := d.WriteRTP(p); err != nil {
					t.Fatal(err)
				}
			}
			d.CloseWrite()
			if err := waitRun(t, res); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.sizes[[2]int{320, 240}] == 0 || c.sizes[[2]int{160, 120}] == 0 {
				t.Fatalf("frame sizes %v, want both 320x240 and 160x120", c.sizes)
			}
		})
	}
}
