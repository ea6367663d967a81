package rtsptest

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// The clock pattern: two rows of 32 square blocks across the top of the frame, each black (0)
// or white (1). Bits 0..47 carry the Unix time in milliseconds when the frame was handed to the
// encoder, bits 48..63 a check word, so a frame that lost its stamp is refused, not misread.
const (
	clockCols = 32
	clockBits = 64
)

func clockCheck(ms uint64) uint64 {
	return ^(ms ^ ms>>16 ^ ms>>32) & 0xffff
}

// ClockOptions returns Options whose publisher sends width x height frames at fps, each stamped
// with the wall-clock time it was handed to ffmpeg (see ReadClock): what a camera's glass sees.
// width must be at least 256 and height at least width/16.
func ClockOptions(width, height, fps int) Options {
	return Options{
		Input: []string{"-f", "rawvideo", "-pix_fmt", "bgr24", "-s", fmt.Sprintf("%dx%d", width, height),
			"-r", strconv.Itoa(fps), "-i", "-"},
		Feed: clockFeed(width, height, fps),
		GOP:  fps,
	}
}

func clockFeed(width, height, fps int) func(ctx context.Context, w io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		frame := make([]byte, width*height*3)
		for i := range frame {
			frame[i] = 96
		}
		tick := time.NewTicker(time.Second / time.Duration(fps))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			drawMotion(frame, width, height, n)
			now := time.Now()
			StampClock(frame, width, height, width*3, now)
			if _, err := w.Write(frame); err != nil {
				return err
			}
		}
	}
}

// drawMotion moves a vertical bar below the clock rows, so the encoder has change to code.
func drawMotion(frame []byte, width, height, n int) {
	top := 2 * (width / clockCols)
	prev, cur := ((n-1)*8%width+width)%width, n*8%width
	for y := top; y < height; y++ {
		row := frame[y*width*3:]
		for x := 0; x < 8; x++ {
			px := (prev + x) % width
			row[3*px], row[3*px+1], row[3*px+2] = 96, 96, 96
		}
		for x := 0; x < 8; x++ {
			px := (cur + x) % width
			row[3*px], row[3*px+1], row[3*px+2] = 230, 200, 40
		}
	}
}

// StampClock draws t into the clock pattern of a BGR image of the given size and row stride.
func StampClock(bgr []byte, width, height, stride int, t time.Time) {
	bs := width / clockCols
	ms := uint64(t.UnixMilli()) & (1<<48 - 1)
	word := ms | clockCheck(ms)<<48
	for i := 0; i < clockBits; i++ {
		v := byte(0)
		if word>>i&1 == 1 {
			v = 255
		}
		x0, y0 := (i%clockCols)*bs, (i/clockCols)*bs
		for y := y0; y < y0+bs && y < height; y++ {
			row := bgr[y*stride:]
			for x := x0; x < x0+bs; x++ {
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	}
}

// ReadClock returns the time stamped into a BGR image (row stride in bytes) by the clock
// publisher, and false when the image carries no valid stamp.
func ReadClock(bgr []byte, width, height, stride int) (time.Time, bool) {
	bs := width / clockCols
	if bs < 4 || height < 2*bs || stride < 3*width || len(bgr) < (2*bs-1)*stride+3*width {
		return time.Time{}, false
	}
	var word uint64
	for i := 0; i < clockBits; i++ {
		x, y := (i%clockCols)*bs+bs/2, (i/clockCols)*bs+bs/2
		p := bgr[y*stride+3*x:]
		if int(p[0])+int(p[1])+int(p[2]) > 3*127 {
			word |= 1 << i
		}
	}
	ms := word & (1<<48 - 1)
	if word>>48 != clockCheck(ms) {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}
