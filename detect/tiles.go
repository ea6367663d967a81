package detect

import (
	"context"
	"image"
	"sort"

	"gocv.io/x/gocv"
)

// TileConfig sets how DetectTiled covers a large frame with overlapping tiles, so that faces too
// small for the detector's 320x240 view of the whole frame are seen at a larger scale.
type TileConfig struct {
	// W and H are the tile size in frame pixels. Default 480x360: 1.5x the detector's input, so
	// a 20 px face reaches the detector at 13 px instead of 6 px in a 1024 px wide frame.
	W, H int
	// Overlap is the share of a tile its neighbour overlaps. Default 0.3 (a face up to 0.3 of a
	// tile lies wholly inside some tile).
	Overlap float32
}

func (c TileConfig) withDefaults() TileConfig {
	if c.W <= 0 || c.H <= 0 {
		c.W, c.H = 480, 360
	}
	if c.Overlap <= 0 || c.Overlap >= 0.9 {
		c.Overlap = 0.3
	}
	return c
}

// Tiles returns overlapping tiles of cfg's size covering a frameW x frameH frame, row by row,
// the last tile of a row or column flush with the frame's edge; nil when the frame fits in one
// tile (no tiling helps).
func Tiles(frameW, frameH int, cfg TileConfig) []image.Rectangle {
	cfg = cfg.withDefaults()
	if frameW <= cfg.W && frameH <= cfg.H {
		return nil
	}
	starts := func(size, tile int) []int {
		if size <= tile {
			return []int{0}
		}
		step := max(1, int(float32(tile)*(1-cfg.Overlap)))
		var out []int
		for x := 0; ; x += step {
			if x+tile >= size {
				return append(out, size-tile)
			}
			out = append(out, x)
		}
	}
	var out []image.Rectangle
	for _, y := range starts(frameH, cfg.H) {
		for _, x := range starts(frameW, cfg.W) {
			out = append(out, image.Rect(x, y, min(x+cfg.W, frameW), min(y+cfg.H, frameH)))
		}
	}
	return out
}

// DetectTiled is Detect plus, for each frame larger than a tile, the detector run on every tile
// of Tiles (all in one batched model call), the tiles' faces mapped back into the frame and
// merged with the whole frame's by non-maximum suppression. A tile's face touching one of the
// tile's inner edges (a face cut by the tile) or taller than half the tile (the whole-frame pass
// sees those) is dropped. Faces come back best score first, as from Detect.
func (d *Detector) DetectTiled(ctx context.Context, frames []gocv.Mat, cfg TileConfig) ([][]Detection, error) {
	type tileOf struct {
		frame int
		r     image.Rectangle
	}
	views := append([]gocv.Mat(nil), frames...)
	var tiles []tileOf
	defer func() {
		for _, v := range views[len(frames):] {
			v.Close()
		}
	}()
	for i, f := range frames {
		if f.Empty() {
			continue // Detect reports it
		}
		for _, r := range Tiles(f.Cols(), f.Rows(), cfg) {
			views = append(views, f.Region(r))
			tiles = append(tiles, tileOf{frame: i, r: r})
		}
	}
	res, err := d.Detect(ctx, views)
	if err != nil {
		return nil, err
	}
	out := res[:len(frames)]
	if len(tiles) == 0 {
		return out, nil
	}
	cfg = cfg.withDefaults()
	const edge = 2 // pixels: a raw box this close to an inner tile edge is cut by it
	for k, t := range tiles {
		fw, fh := frames[t.frame].Cols(), frames[t.frame].Rows()
		r := t.r
		for _, det := range res[len(frames)+k] {
			raw := det.Raw
			if raw.H() > float32(r.Dy())/2 ||
				r.Min.X > 0 && raw.X1 < edge || r.Min.Y > 0 && raw.Y1 < edge ||
				r.Max.X < fw && raw.X2 > float32(r.Dx()-edge) || r.Max.Y < fh && raw.Y2 > float32(r.Dy()-edge) {
				continue
			}
			ox, oy := float32(r.Min.X), float32(r.Min.Y)
			raw = Box{raw.X1 + ox, raw.Y1 + oy, raw.X2 + ox, raw.Y2 + oy}
			out[t.frame] = append(out[t.frame], Detection{Box: squareBox(raw, float32(fw), float32(fh)), Score: det.Score, Raw: raw})
		}
	}
	for i := range out {
		ds := out[i]
		sort.SliceStable(ds, func(a, b int) bool { return ds[a].Score > ds[b].Score })
		out[i] = NMS(ds, d.post.NMSIoU, d.post.NMSContain)
	}
	return out, nil
}
