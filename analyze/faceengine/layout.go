package faceengine

import (
	"image"
	"sort"
)

// layoutLabels places each face's label block: blocks[i] is a sizes[i] rectangle beside
// boxes[i] (above, below, right, left, inside its top, or stacked against a block already
// placed), inside the w x h image. Faces are placed in reading order (top to bottom, then left
// to right); each takes the spot that overlaps the blocks already placed least, then other
// faces' boxes least, then lies nearest its box covering the least of it, so the labels of adjacent faces do not cover
// each other while the image has room. The web view lays out its canvas labels the same way
// (sink/web/static/app.js, placeLabel).
func layoutLabels(boxes []image.Rectangle, sizes []image.Point, w, h int) []image.Rectangle {
	const gap = 2
	order := make([]int, len(boxes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ba, bb := boxes[order[a]], boxes[order[b]]
		return ba.Min.Y < bb.Min.Y || ba.Min.Y == bb.Min.Y && ba.Min.X < bb.Min.X
	})
	blocks := make([]image.Rectangle, len(boxes))
	out := make([]image.Rectangle, 0, len(boxes)) // placed so far
	clamp := func(x, y int, sz image.Point) image.Rectangle {
		x = max(0, min(x, w-sz.X))
		y = max(0, min(y, h-sz.Y))
		return image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x+sz.X, y+sz.Y)}
	}
	overlap := func(a, b image.Rectangle) int {
		in := a.Intersect(b)
		return in.Dx() * in.Dy()
	}
	abs := func(v int) int { return max(v, -v) }
	for _, i := range order {
		b, sz := boxes[i], sizes[i]
		cands := []image.Point{{b.Min.X, b.Min.Y - sz.Y - gap}, {b.Min.X, b.Max.Y + gap}, {b.Max.X + gap, b.Min.Y},
			{b.Min.X - sz.X - gap, b.Min.Y}, {b.Min.X, b.Min.Y}}
		for _, p := range out {
			cands = append(cands, image.Pt(b.Min.X, p.Min.Y-sz.Y-gap), image.Pt(b.Min.X, p.Max.Y+gap),
				image.Pt(p.Max.X+gap, p.Min.Y), image.Pt(p.Min.X-sz.X-gap, p.Min.Y))
		}
		var best image.Rectangle
		bestCost := -1.0
		for k, c := range cands {
			r := clamp(c.X, c.Y, sz)
			cost := 0.0
			for _, p := range out {
				cost += 1e6 * float64(overlap(r, p))
			}
			for j, o := range boxes {
				if j != i {
					cost += 10 * float64(overlap(r, o))
				}
			}
			// Distance from the box (a block just above or below it costs ~0) weighs more than
			// covering a little of its own face: a label far from its face is hard to read.
			dx := max(0, r.Min.X-b.Max.X, b.Min.X-r.Max.X)
			dy := max(0, r.Min.Y-b.Max.Y, b.Min.Y-r.Max.Y)
			cost += 3*float64(dx+dy) + float64(abs(r.Min.X-b.Min.X)) + float64(overlap(r, b))/8 + float64(k)/100
			if bestCost < 0 || cost < bestCost {
				best, bestCost = r, cost
			}
		}
		out = append(out, best)
		blocks[i] = best
	}
	return blocks
}
