package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-video/vigil/pkg/config"
)

// JetStream names. Results, drops and end-of-stream records share VIGIL_RESULTS so that one
// durable consumer gives a sink everything it needs to account for a stream; track events go to
// VIGIL_EVENTS.
const (
	// ResultsStream captures vigil.results.>, vigil.drops.> and vigil.eos.>.
	ResultsStream = "VIGIL_RESULTS"
	// EventsStream captures vigil.events.> (vigil.events.<stream>.<kind>, published by track).
	EventsStream = "VIGIL_EVENTS"
	// EventsPrefix is the prefix of event subjects.
	EventsPrefix = "vigil.events"
)

// ResultsStreamConfig returns the configuration of VIGIL_RESULTS for cfg: file or memory
// storage, cfg.Replicas, limits from cfg.Results (oldest discarded first), the duplicate window,
// and with cfg.Partitions > 0 the partitioning subject transform (see ResultsPartitionTransform).
func ResultsStreamConfig(cfg config.JetStream) jetstream.StreamConfig {
	sc := jetstream.StreamConfig{
		Name:        ResultsStream,
		Description: "Vigil analysis results, drops and end-of-stream records",
		Subjects:    []string{ResultsPrefix + ".>", DropsPrefix + ".>", EOSPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.Results.MaxAge,
		MaxBytes:    int64(cfg.Results.MaxBytes),
		MaxMsgs:     -1,
		Storage:     storage(cfg.Storage),
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  cfg.Duplicates,
	}
	if cfg.Partitions > 0 {
		tr := ResultsPartitionTransform(cfg.Partitions)
		sc.SubjectTransform = &tr
	}
	return sc
}

// EventsStreamConfig returns the configuration of VIGIL_EVENTS for cfg.
func EventsStreamConfig(cfg config.JetStream) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "Vigil track events: face appeared, recognised, left",
		Subjects:    []string{EventsPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.Events.MaxAge,
		MaxBytes:    int64(cfg.Events.MaxBytes),
		MaxMsgs:     -1,
		Storage:     storage(cfg.Storage),
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  cfg.Duplicates,
	}
}

func storage(s string) jetstream.StorageType {
	if s == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// EnsureStreams creates VIGIL_RESULTS and VIGIL_EVENTS when they do not exist. Every role calls
// it at start, so whichever starts first creates them and a new node needs nothing but the NATS
// URL. An existing stream is left as it is (the first creator's limits win; change them with an
// explicit stream update), and a difference from cfg is logged once. While a cluster is still
// electing its JetStream leader the call retries until ctx ends.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg config.JetStream, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	for _, sc := range []jetstream.StreamConfig{ResultsStreamConfig(cfg), EventsStreamConfig(cfg)} {
		if err := ensureStream(ctx, js, sc, log); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) error {
	return retry(ctx, "create stream "+want.Name, func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, want)
		if err == nil {
			log.Info("JetStream stream created", "stream", want.Name, "replicas", want.Replicas, "max_age", want.MaxAge, "max_bytes", want.MaxBytes)
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		s, err := js.Stream(ctx, want.Name)
		if err != nil {
			return err
		}
		have := s.CachedInfo().Config
		if diff := streamDiff(have, want); diff != "" {
			log.Warn("JetStream stream exists with other settings; keeping them", "stream", want.Name, "differences", diff)
		}
		return nil
	})
}

func streamDiff(have, want jetstream.StreamConfig) string {
	var d []string
	add := func(name string, h, w any) { d = append(d, fmt.Sprintf("%s %v (configured %v)", name, h, w)) }
	if have.MaxAge != want.MaxAge {
		add("max_age", have.MaxAge, want.MaxAge)
	}
	if have.MaxBytes != want.MaxBytes {
		add("max_bytes", have.MaxBytes, want.MaxBytes)
	}
	if have.Replicas != want.Replicas {
		add("replicas", have.Replicas, want.Replicas)
	}
	if have.Storage != want.Storage {
		add("storage", have.Storage, want.Storage)
	}
	if !slices.Equal(have.Subjects, want.Subjects) {
		add("subjects", have.Subjects, want.Subjects)
	}
	if (have.SubjectTransform == nil) != (want.SubjectTransform == nil) ||
		have.SubjectTransform != nil && *have.SubjectTransform != *want.SubjectTransform {
		add("subject_transform", have.SubjectTransform, want.SubjectTransform)
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

// EnsureKeyValue opens the key-value bucket kv.Bucket, creating it with kv when it does not
// exist (for the gallery and the stream list). Concurrent callers end with the same bucket.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var out jetstream.KeyValue
	err := retry(ctx, "key-value bucket "+kv.Bucket, func(ctx context.Context) error {
		b, err := js.KeyValue(ctx, kv.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			b, err = js.CreateKeyValue(ctx, kv)
			if errors.Is(err, jetstream.ErrBucketExists) {
				b, err = js.KeyValue(ctx, kv.Bucket)
			}
		}
		out = b
		return err
	})
	return out, err
}

// EnsureObjectStore opens the object store cfg.Bucket, creating it with cfg when it does not
// exist (for models; the object store records each object's SHA-256 digest).
func EnsureObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	var out jetstream.ObjectStore
	err := retry(ctx, "object store "+cfg.Bucket, func(ctx context.Context) error {
		b, err := js.ObjectStore(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			b, err = js.CreateObjectStore(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				b, err = js.ObjectStore(ctx, cfg.Bucket)
			}
		}
		out = b
		return err
	})
	return out, err
}

// ErrNoJetStream is wrapped by the setup helpers when the server does not answer JetStream
// requests at all: it runs without JetStream.
var ErrNoJetStream = errors.New("no JetStream on this NATS server: enable it (nats-server -js, or a jetstream block in its config) or set jetstream.enabled: false")

// retry runs op until it succeeds, fails permanently or ctx ends. Each attempt gets at most 5 s.
// A server that never answers (no responders, three times in a row) has no JetStream.
func retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	wait := 100 * time.Millisecond
	silent := 0
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
			if silent++; silent >= 3 {
				return fmt.Errorf("jetstream: %s: %w", what, ErrNoJetStream)
			}
		} else {
			silent = 0
			if !transient(err) {
				return fmt.Errorf("jetstream: %s: %w", what, err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("jetstream: %s: %w (last error: %v)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// transient reports whether a JetStream error may go away by itself: a cluster is electing a
// leader, a request timed out, the connection is reconnecting.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeJetStreamNotEnabled, jetstream.JSErrCodeJetStreamNotEnabledForAccount:
			return false
		}
		return apiErr.Code >= 500 || apiErr.Code == 0
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// Publisher publishes one Vigil document. msgID identifies the document for deduplication
// ("" for none); a Publisher may ignore it.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte, msgID string) error
}

// CorePublisher publishes on a plain NATS connection: fire and forget, nothing is
// acknowledged. It ignores msgID.
type CorePublisher struct {
	// Conn is the connection. Required.
	Conn *nats.Conn
}

// Publish publishes data on subject.
func (p CorePublisher) Publish(_ context.Context, subject string, data []byte, _ string) error {
	return p.Conn.Publish(subject, data)
}

// StreamPublisher publishes to subjects a JetStream stream captures and returns only once the
// stream has stored the message. An attempt that fails or whose acknowledgement does not arrive
// (a server died, a stream leader moved) is retried with the same message id, so the stream
// stores the document once as long as the retries fall within its duplicate window.
type StreamPublisher struct {
	// JS is the JetStream context. Required.
	JS jetstream.JetStream
	// AttemptTimeout bounds one attempt. Default 2s.
	AttemptTimeout time.Duration
	// Timeout bounds all attempts of one Publish. Default 30s.
	Timeout time.Duration
}

// Publish stores data on subject with message id msgID, retrying until it is acknowledged,
// Timeout passes or ctx ends.
func (p *StreamPublisher) Publish(ctx context.Context, subject string, data []byte, msgID string) error {
	attempt, total := p.AttemptTimeout, p.Timeout
	if attempt <= 0 {
		attempt = 2 * time.Second
	}
	if total <= 0 {
		total = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	wait := 100 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, attempt)
		_, err := p.JS.PublishMsg(actx, &nats.Msg{Subject: subject, Data: data}, opts...)
		acancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("publish %s: %w", subject, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("publish %s: not acknowledged: %w", subject, err)
		case <-t.C:
		}
		wait = min(wait*2, time.Second)
	}
}
