-- The same table as the Postgres migration of this name (R45: the
-- suppression list, one per daemon, addresses in lower case).
CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY CHECK (email = lower(email)),
    reason     TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual')),
    source     TEXT NOT NULL,
    detail     TEXT,
    created_at TEXT NOT NULL
);
