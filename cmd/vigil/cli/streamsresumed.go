package cli

import (
	"log/slog"
	"sort"

	"github.com/vigil-video/vigil/ingest/streams"
)

// resumedStreams returns the names, sorted, of the streams in list that this ingest runs but
// were not given at start (seed): those it resumed from the persisted stream list.
func resumedStreams(list []streams.Status, seed []streams.Spec) []string {
	given := map[string]bool{}
	for _, s := range seed {
		given[s.Name] = true
	}
	var out []string
	for _, st := range list {
		if st.RunsHere && !given[st.Name] {
			out = append(out, st.Name)
		}
	}
	sort.Strings(out)
	return out
}

// logResumed says which streams a start resumed from the persisted stream list, and from where:
// they cost as much as the ones given, and a user who did not ask for them should know how they
// came back and how to stop them. Nothing is logged when none was resumed.
func logResumed(log *slog.Logger, list []streams.Status, seed []streams.Spec, from string) {
	names := resumedStreams(list, seed)
	if len(names) == 0 {
		return
	}
	log.Info("streams resumed from an earlier run", "streams", names, "from", from,
		"stop_one", "DELETE /v1/streams/<name> (or PATCH it with {\"enabled\": false})")
}
