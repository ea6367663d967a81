package bus

import (
	"hash/fnv"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Partitioning per-stream state.
//
// Analyzers are stateless, but the track role keeps state per stream (track ids, identity
// votes). To run N track instances, each must see every result of the streams it owns and none
// of the others'. NATS does this with a subject transform whose destination uses the
// {{partition(N,1)}} function: a deterministic hash of the first wildcard token (the stream id)
// modulo N.
//
// With jetstream.partitions = N, VIGIL_RESULTS is created with the transform
//
//	vigil.results.*  →  vigil.results.{{partition(N,1)}}.{{wildcard(1)}}
//
// so a result published on vigil.results.lobby is stored as vigil.results.<p>.lobby, where
// p = Partition("lobby", N). Track instance p consumes with the filter PartitionFilter(p)
// (vigil.results.<p>.*). Core NATS subscribers are unaffected: the transform applies only inside
// the stream, so `nats sub 'vigil.results.>'` and the ingest credit window still see
// vigil.results.<stream>. Drops and end-of-stream records are not partitioned.
//
// Deployments that prefer account-level mapping (every subscriber sees the partitioned subject)
// can put the same pair, from ResultsPartitionMapping, in the server's `mappings` block instead;
// then leave jetstream.partitions at 0. Changing N moves streams between partitions: stop the
// track instances, change N on the stream (a stream update), start N instances.

// Partition returns the partition, 0..n-1, that the NATS server's {{partition(n,1)}} mapping
// function assigns to a subject whose first wildcard token is stream: the 32-bit FNV-1a hash of
// the token modulo n. It returns 0 when n < 1.
func Partition(stream string, n int) int {
	if n < 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(stream))
	return int(h.Sum32() % uint32(n))
}

// PartitionMapping returns the source and destination subjects that partition prefix.<stream>
// into n partitions (n ≥ 1): prefix.* → prefix.{{partition(n,1)}}.{{wildcard(1)}}. It serves any
// per-stream subject family (results, or the analyzers' output a track role consumes).
func PartitionMapping(prefix string, n int) (src, dest string) {
	return prefix + ".*", prefix + ".{{partition(" + strconv.Itoa(n) + ",1)}}.{{wildcard(1)}}"
}

// ResultsPartitionMapping is PartitionMapping for vigil.results.
func ResultsPartitionMapping(n int) (src, dest string) { return PartitionMapping(ResultsPrefix, n) }

// ResultsPartitionTransform returns ResultsPartitionMapping(n) as a JetStream stream subject
// transform (VIGIL_RESULTS uses it when jetstream.partitions is n).
func ResultsPartitionTransform(n int) jetstream.SubjectTransformConfig {
	src, dest := ResultsPartitionMapping(n)
	return jetstream.SubjectTransformConfig{Source: src, Destination: dest}
}

// PartitionFilter returns the consumer filter subject for the results of partition p:
// vigil.results.<p>.*.
func PartitionFilter(p int) string { return PartitionSubject(ResultsPrefix, p) }

// PartitionSubject returns the subject matching every stream of partition p of a family
// partitioned with PartitionMapping: prefix.<p>.*.
func PartitionSubject(prefix string, p int) string {
	return prefix + "." + strconv.Itoa(p) + ".*"
}
