package gstdec

import (
	"encoding/binary"
	"slices"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// BenchmarkDecode720p measures the decoder alone on a 1280x720 RTP stream that ffmpeg encoded
// (3 s of a moving test pattern, looped with rewritten sequence numbers and timestamps): each
// iteration writes one frame's packets and waits for its Mat. Reported: the CPU this process
// spends per frame (pipe, depacketise, jitter buffer, decode, BGR conversion, copy into the Mat)
// and the write-to-Mat latency p50/p99.
//
//	go test -tags matprofile -run '^$' -bench Decode720p -benchtime 300x ./ingest/webrtc/gstdec/
func BenchmarkDecode720p(b *testing.B) {
	for _, codec := range []Codec{VP8, H264} {
		b.Run(string(codec), func(b *testing.B) {
			pkts := encodeRTP(b, codec, 96, "1280x720", 90)
			frames := splitFrames(pkts)
			d, err := New(codec, 96)
			if err != nil {
				b.Fatal(err)
			}
			got := make(chan gocv.Mat, 4)
			res := make(chan error, 1)
			go func() { res <- d.Run(func(m gocv.Mat) { got <- m }) }()
			defer func() {
				d.CloseWrite()
				for {
					select {
					case m := <-got:
						m.Close()
					case err := <-res:
						if err != nil {
							b.Error(err)
						}
						return
					}
				}
			}()
			span := binary.BigEndian.Uint32(frames[len(frames)-1][0][4:8]) - binary.BigEndian.Uint32(frames[0][0][4:8]) + 3000
			buf := make([]byte, 2048)
			var lat []time.Duration
			i := 0
			write := func() time.Time {
				loop, f := i/len(frames), frames[i%len(frames)]
				i++
				for _, p := range f {
					q := buf[:len(p)]
					copy(q, p)
					binary.BigEndian.PutUint16(q[2:4], binary.BigEndian.Uint16(p[2:4])+uint16(loop*len(pkts)))
					binary.BigEndian.PutUint32(q[4:8], binary.BigEndian.Uint32(p[4:8])+uint32(loop)*span)
					if err := d.WriteRTP(q); err != nil {
						b.Fatal(err)
					}
				}
				return time.Now()
			}
			wait := func() {
				select {
				case m := <-got:
					if m.Cols() != 1280 || m.Rows() != 720 {
						b.Errorf("frame %dx%d", m.Cols(), m.Rows())
					}
					m.Close()
				case err := <-res:
					b.Fatalf("decoder ended: %v", err)
				case <-time.After(5 * time.Second):
					b.Fatalf("no frame 5 s after frame %d's packets", i)
				}
			}
			// Warm up over one loop of the clip (GStreamer allocates on the first frames).
			for range len(frames) {
				write()
				wait()
			}
			cpu0 := cpuTime(b)
			n := 0
			for b.Loop() {
				sent := write()
				wait()
				lat = append(lat, time.Since(sent))
				n++
			}
			cpu := cpuTime(b) - cpu0
			slices.Sort(lat)
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu-ms/frame")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}

// splitFrames groups RTP packets into frames by the marker bit.
func splitFrames(pkts [][]byte) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	for _, p := range pkts {
		cur = append(cur, p)
		if p[1]&0x80 != 0 {
			out = append(out, cur)
			cur = nil
		}
	}
	return out
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
