package track

import (
	"slices"
	"time"

	"github.com/vigil-video/vigil/pkg/result"
)

// carried aggregates a track's attribute outputs over the sightings the heads ran on, and puts
// the track's current value of each on every face of the track:
//   - age: the mean of the middle half of the last AgeWindow estimates (robust to outliers);
//   - gender: the quality-weighted mean male probability, labelled by a 0.5 vote;
//   - emotion: the quality-weighted mean of the class probabilities, recent sightings counting
//     more (expressions change), labelled by the largest;
//   - liveness: the quality-weighted mean score, and a quality-weighted vote of the sightings'
//     real/fake verdicts;
//   - pose: the latest (it changes from frame to frame).
//
// seq and at name the newest frame the values rest on.
type carried struct {
	ages []float32

	maleSum, genderW float64

	emotions map[string]float64
	emotionW float64

	liveSum, liveW, realW float64

	pose *result.Pose

	seq uint64
	at  time.Time
}

// emotionDecay is how much an earlier sighting's emotion counts for each newer one.
const emotionDecay = 0.6

// take adds f's fresh attribute outputs (those of its own frame), weighted by the sighting's
// quality q (floored so that a poor but only view still counts), from frame seq captured at.
func (c *carried) take(f *result.Face, q float64, seq uint64, at time.Time, ageWindow int) {
	w := max(q, 0.05)
	took := false
	if f.Age != nil && *f.Age == *f.Age {
		c.ages = append(c.ages, *f.Age)
		if n := len(c.ages) - ageWindow; n > 0 {
			c.ages = slices.Delete(c.ages, 0, n)
		}
		took = true
	}
	if f.Gender != nil {
		c.maleSum += w * float64(f.Gender.Male())
		c.genderW += w
		took = true
	}
	if f.Emotion != nil && len(f.Emotion.Scores) > 0 {
		if c.emotions == nil {
			c.emotions = map[string]float64{}
		}
		for k := range c.emotions {
			c.emotions[k] *= emotionDecay
		}
		c.emotionW *= emotionDecay
		for k, v := range f.Emotion.Scores {
			c.emotions[k] += w * float64(v)
		}
		c.emotionW += w
		took = true
	}
	if f.Liveness != nil {
		c.liveSum += w * float64(f.Liveness.Score)
		c.liveW += w
		if f.Liveness.Real {
			c.realW += w
		}
		took = true
	}
	if f.Pose != nil {
		p := *f.Pose
		c.pose = &p
		took = true
	}
	if took && seq >= c.seq {
		c.seq, c.at = seq, at
	}
}

// fill puts the track's current value of every attribute it has on f, replacing f's own (a
// single frame's) values, and the frame they rest on.
func (c *carried) fill(f *result.Face) {
	if c.seq == 0 {
		return
	}
	if len(c.ages) > 0 {
		v := robustMean(c.ages)
		f.Age = &v
	}
	if c.genderW > 0 {
		male := float32(c.maleSum / c.genderW)
		f.Gender = result.GenderFromMale(male, 0.5)
	}
	if c.emotionW > 0 {
		e := &result.Emotion{Scores: make(map[string]float32, len(c.emotions))}
		best := -1.0
		for _, k := range sortedKeys(c.emotions) {
			v := c.emotions[k] / c.emotionW
			e.Scores[k] = float32(v)
			if v > best {
				e.Label, best = k, v
			}
		}
		f.Emotion = e
	}
	if c.liveW > 0 {
		f.Liveness = &result.Liveness{Score: float32(c.liveSum / c.liveW), Real: c.realW*2 >= c.liveW}
	}
	if c.pose != nil {
		p := *c.pose
		f.Pose = &p
	}
	f.HeadsSeq = c.seq
	at := c.at.UTC()
	f.HeadsCapturedAt = &at
}

// robustMean is the mean of the middle half of v: sorted, a quarter (rounded) of the values
// dropped at each end; the median of 3, and v itself below 3.
func robustMean(v []float32) float32 {
	s := slices.Clone(v)
	slices.Sort(s)
	q := (len(s) + 1) / 4
	s = s[q : len(s)-q]
	var sum float64
	for _, x := range s {
		sum += float64(x)
	}
	return float32(sum / float64(len(s)))
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
