-- The same table and column as the Postgres migration of this name. One
-- process owns a SQLite file, so no other process reads the beats: the
-- SQLite adapter takes back every `sending` row another instance (one
-- before a crash) leased, at once. The table keeps the two schemas one.
CREATE TABLE process_heartbeats (
    instance_id TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    beat_at     TEXT NOT NULL
);

ALTER TABLE email_outbox ADD COLUMN lease_owner TEXT;
