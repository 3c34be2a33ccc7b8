-- R49: the operator console's sessions. Kept in the database so that a
-- session signed in on one replica works on every other; only a SHA-256 of
-- the session id is stored (the cookie holds the id itself), with the name
-- and scope of the API key that signed in, the form token (CSRF) of the
-- session and its expiry. A row holds nothing that signs in by itself.
CREATE TABLE console_sessions (
    id_hash    bytea PRIMARY KEY,
    key_name   text NOT NULL,
    scope      text NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- The console's failed deliveries page lists the failed emails newest first.
CREATE INDEX email_outbox_failed ON email_outbox (updated_at) WHERE status = 'failed';

-- The console's outbox chart counts the attempts of the last hour.
CREATE INDEX email_attempts_at ON email_attempts (attempted_at);

-- The outbox chart of webhook endpoint deliveries (and the chores' purge of
-- old ones) read them by time.
CREATE INDEX webhook_deliveries_attempted ON webhook_deliveries (attempted_at);
