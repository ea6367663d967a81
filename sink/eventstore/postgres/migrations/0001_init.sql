-- Vigil event store, schema version 1 (PostgreSQL). Times are Unix nanoseconds.
CREATE TABLE IF NOT EXISTS vigil_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream           TEXT             NOT NULL,
    kind             TEXT             NOT NULL,
    track_id         TEXT             NOT NULL,
    seq              BIGINT           NOT NULL,
    captured_ns      BIGINT           NOT NULL,
    at_ns            BIGINT           NOT NULL,
    identity         TEXT,
    similarity       DOUBLE PRECISION,
    first_seen_ns    BIGINT           NOT NULL,
    last_seen_ns     BIGINT           NOT NULL,
    frames           INTEGER          NOT NULL,
    reason           TEXT             NOT NULL DEFAULT '',
    crop_seq         BIGINT           NOT NULL,
    crop_captured_ns BIGINT           NOT NULL,
    box_x1           DOUBLE PRECISION NOT NULL,
    box_y1           DOUBLE PRECISION NOT NULL,
    box_x2           DOUBLE PRECISION NOT NULL,
    box_y2           DOUBLE PRECISION NOT NULL,
    crop_width       INTEGER          NOT NULL,
    crop_height      INTEGER          NOT NULL,
    stored_ns        BIGINT           NOT NULL,
    UNIQUE (stream, track_id, kind)
);
CREATE INDEX IF NOT EXISTS vigil_events_stream_id ON vigil_events (stream, id);
CREATE INDEX IF NOT EXISTS vigil_events_identity_id ON vigil_events (identity, id);
CREATE INDEX IF NOT EXISTS vigil_events_captured ON vigil_events (captured_ns);
CREATE INDEX IF NOT EXISTS vigil_events_stored ON vigil_events (stored_ns);
CREATE TABLE IF NOT EXISTS vigil_snapshots (
    event_id BIGINT PRIMARY KEY REFERENCES vigil_events (id) ON DELETE CASCADE,
    jpeg     BYTEA  NOT NULL
);
CREATE TABLE IF NOT EXISTS vigil_results (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream      TEXT             NOT NULL,
    seq         BIGINT           NOT NULL,
    captured_ns BIGINT           NOT NULL,
    analyzed_ns BIGINT           NOT NULL,
    latency_ms  DOUBLE PRECISION NOT NULL,
    width       INTEGER          NOT NULL,
    height      INTEGER          NOT NULL,
    faces       INTEGER          NOT NULL,
    identified  INTEGER          NOT NULL,
    identities  TEXT             NOT NULL,
    stored_ns   BIGINT           NOT NULL,
    UNIQUE (stream, seq, captured_ns)
);
CREATE INDEX IF NOT EXISTS vigil_results_stream_id ON vigil_results (stream, id);
CREATE INDEX IF NOT EXISTS vigil_results_captured ON vigil_results (captured_ns);
CREATE INDEX IF NOT EXISTS vigil_results_stored ON vigil_results (stored_ns);
