-- Vigil event store, schema version 2 (SQLite): each track's embedding, for search by photo.
-- One row per face.left event that carried an embedding; embedding is facesearch.Encode's form
-- (int8 vector with its scale, then the sign code the search filters on).
CREATE TABLE IF NOT EXISTS vigil_faces (
    event_id   INTEGER PRIMARY KEY REFERENCES vigil_events (id) ON DELETE CASCADE,
    unknown_id TEXT,
    embedding  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vigil_faces_unknown ON vigil_faces (unknown_id);
CREATE INDEX IF NOT EXISTS vigil_events_stream_track ON vigil_events (stream, track_id);
