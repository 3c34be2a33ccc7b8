-- The same table as the Postgres migration of this name (R49: sent and
-- failed per minute of the sinks that keep no per-attempt rows).
CREATE TABLE sink_minutes (
    sink   TEXT NOT NULL,
    minute TEXT NOT NULL,
    sent   INTEGER NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (sink, minute)
);
CREATE INDEX sink_minutes_minute ON sink_minutes (minute);
