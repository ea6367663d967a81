package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/analyze/gallery"
	"github.com/vigil-video/vigil/analyze/track"
	"github.com/vigil-video/vigil/pkg/httpapi"
	"github.com/vigil-video/vigil/pkg/unknown"
	"github.com/vigil-video/vigil/sink/eventstore"
	"github.com/vigil-video/vigil/sink/unknowns"
)

// startUnknowns opens the unknown people (the JetStream KV bucket vigil_unknowns, entries
// expiring after maxAge unseen) and mounts /v1/unknowns on srv: enrolment goes to the gallery of
// svc, snapshots and unknown ids to the event store. The caller closes the store; it also feeds
// unknowns.Sink with the event consumer's events.
func startUnknowns(ctx context.Context, js jetstream.JetStream, srv *httpapi.Server, events *eventstore.Store, svc *faceService,
	maxAge time.Duration, log *slog.Logger) (*unknowns.Store, error) {
	st, err := unknowns.Open(ctx, js, unknowns.Config{MaxAge: maxAge, Threshold: track.DefaultThreshold, Log: log})
	if err != nil {
		return nil, err
	}
	api := &unknowns.API{Store: st, Snapshot: events.TrackSnapshot, Relabel: events.RelabelUnknown}
	if svc != nil && svc.Store != nil {
		api.Enroll = enrollFromEmbeddings(svc.Store)
		svc.unknowns = st // erasure removes the matching unknowns
	}
	api.Mount(srv)
	return st, nil
}

// openUnknownIndex opens the track role's read-only view of the unknown people (the
// vigil_unknowns bucket, which need not exist yet), matched at the threshold they are
// clustered with.
func openUnknownIndex(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (*unknown.Index, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return unknown.Open(ctx, js, unknown.IndexConfig{Threshold: track.DefaultThreshold, Log: log})
}

// enrollFromEmbeddings creates gallery identities from an unknown's track embeddings.
func enrollFromEmbeddings(gs *gallery.Store) unknowns.Enroller {
	return func(ctx context.Context, name string, embs [][]float32) (string, error) {
		photos := make([]gallery.NewPhoto, len(embs))
		for i, e := range embs {
			photos[i] = gallery.NewPhoto{Embedding: e}
		}
		ident, err := gs.Create(ctx, name, photos)
		switch {
		case errors.Is(err, gallery.ErrExists):
			return "", fmt.Errorf("%w: %w", unknowns.ErrExists, err)
		case errors.Is(err, gallery.ErrInvalidName), errors.Is(err, gallery.ErrEmbedding), errors.Is(err, gallery.ErrTooManyPhotos):
			return "", fmt.Errorf("%w: %w", unknowns.ErrInvalid, err)
		}
		return ident.ID, err
	}
}
