// Package track is the stateful stage after the stateless analyzers: per stream, it follows faces
// across frames (track ids), decides each track's identity by a quality-weighted vote over several
// frames, schedules the heavy heads (emotion, liveness, pose) per track instead of per frame,
// carries their latest output forward on the track, and announces face.appeared,
// face.recognized and face.left once per track.
//
// Data flow (see Role):
//
//	analyze ──vigil.analyzed.<stream>──► track ──vigil.results.<stream>──► sink, users
//	(full results, with embeddings)        │  (track_id, identity, carried attributes)
//	                                       ├──vigil.events.<stream>.face.{appeared,recognized,left}
//	ingest ◄──vigil.control.heads.<stream>─┘  ("run heads X on the next frame")
//
// The tracker, the voting and the event logic (Tracker) are pure Go and take no clock: their
// time is the frames' capture time and their order the frames' sequence numbers. Role adds NATS,
// per-stream state with idle eviction, and reordering of results that analyzers finished out of
// order. The wire formats (events, crop references, heads requests) live in pkg/event.
//
// The package is pure Go (no cgo).
package track
