// Package bus holds Vigil's NATS plumbing: the subject layout; client connections with
// credentials and TLS (Dial, from a config.NATS section) and their shutdown (Drain); the JetStream
// setup every role runs at start (EnsureStreams for VIGIL_RESULTS and VIGIL_EVENTS, EnsureKeyValue
// and EnsureObjectStore for the gallery, stream list and models), so a new node needs only the
// NATS URL; publishers that wait for JetStream's acknowledgement (StreamPublisher); subject
// partitioning of per-stream state (Partition, see partition.go); and the embedded NATS server
// that `vigil run` starts for a single machine. Roles talk to each other only through these
// subjects, inside one process or across many. bustest starts real servers and clusters for
// tests.
package bus

import (
	"github.com/vigil-video/vigil/pkg/frame"
)

// Subject prefixes. A full subject is prefix + "." + a validated stream id.
const (
	FramesPrefix  = "vigil.frames"
	ResultsPrefix = "vigil.results"
	DropsPrefix   = "vigil.drops"
	EOSPrefix     = "vigil.eos"
	// LateHeadsPrefix carries late heads: a result document for a frame whose result went out
	// before some of its heads ran (result.Face.PendingHeads), with those heads' outputs on its
	// faces (same seq, same faces in the same order). The track role folds them into its tracks.
	LateHeadsPrefix = "vigil.lateheads"
)

// AnalyzeQueue is the queue group analyzers join on frame subjects, so each frame goes to one
// analyzer.
const AnalyzeQueue = "vigil-analyze"

// Subject returns prefix.stream after validating stream; a subject is never built from an
// unchecked stream id.
func Subject(prefix, stream string) (string, error) {
	if err := frame.ValidateStream(stream); err != nil {
		return "", err
	}
	return prefix + "." + stream, nil
}

// All returns the wildcard subject matching prefix for every stream.
func All(prefix string) string { return prefix + ".*" }
