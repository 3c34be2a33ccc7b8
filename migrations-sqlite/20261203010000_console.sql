-- The same tables and indexes as the Postgres migration of this name (R49:
-- the console's sessions, hashed ids only).
CREATE TABLE console_sessions (
    id_hash    BLOB PRIMARY KEY,
    key_name   TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

CREATE INDEX email_outbox_failed ON email_outbox (updated_at) WHERE status = 'failed';

CREATE INDEX email_attempts_at ON email_attempts (attempted_at);

CREATE INDEX webhook_deliveries_attempted ON webhook_deliveries (attempted_at);
