// Package heads names the face heads: the models that run on each face after detection and
// landmarks. It is the one list of their names, shared by the analyzer (--heads,
// --on-demand-heads), the track role (the heads it asks for per track), the face API (the
// "heads" field of /v1/analyze) and the models manifest. Pure Go, no dependencies.
package heads

// The head names, as written in configuration, requests and the models manifest.
const (
	Embedding = "embedding"
	Age       = "age"
	Gender    = "gender"
	Emotion   = "emotion"
	Liveness  = "liveness"
	Pose      = "pose"
)

// All returns every face head in the order they run. The slice is the caller's.
func All() []string { return []string{Embedding, Age, Gender, Emotion, Liveness, Pose} }

// Default returns the heads run when none are chosen: all but emotion, whose DenseNet-121 costs
// ~66 ms per face on one core (30x the detector) and would keep a 2-core laptop from real time.
// The slice is the caller's.
func Default() []string { return without(All(), Emotion) }

// Costly returns the heads too costly to run beside the others on a live frame: the track role
// asks for them on a frame of their own, and the analyzer runs them after publishing that frame's
// result, at low priority (late heads). Emotion's DenseNet-121 costs ~70 ms a face on one core,
// several times detection, landmarks and the other heads together. The slice is the caller's.
func Costly() []string { return []string{Emotion} }

// Attributes returns the heads that describe a face, in the order they run: all but the
// embedding (which identifies it). The slice is the caller's.
func Attributes() []string { return without(All(), Embedding) }

// Without returns list without the heads named in drop, keeping the order.
func Without(list []string, drop ...string) []string { return without(list, drop...) }

func without(list []string, drop ...string) []string {
	out := make([]string, 0, len(list))
next:
	for _, h := range list {
		for _, d := range drop {
			if h == d {
				continue next
			}
		}
		out = append(out, h)
	}
	return out
}
