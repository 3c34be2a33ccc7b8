-- The same tables and columns as the Postgres migration of this name
-- (issue 14, R43, R44: bounces and complaints received, and the mark they
-- leave on their email).
CREATE TABLE email_feedback (
    id          TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    source      TEXT NOT NULL,
    kind        TEXT CHECK (kind IN ('hard_bounce', 'soft_bounce', 'complaint')),
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'unmatched', 'ignored', 'malformed')),
    outbox_id   TEXT REFERENCES email_outbox (id),
    matched_by  TEXT CHECK (matched_by IN ('return_path', 'message_id', 'provider_id', 'address')),
    status_code TEXT,
    detail      TEXT,
    recipient   TEXT,
    envelope_to TEXT,
    message_id  TEXT,
    error       TEXT,
    CHECK ((outbox_id IS NULL) = (matched_by IS NULL))
);
CREATE INDEX email_feedback_outbox ON email_feedback (outbox_id, received_at) WHERE outbox_id IS NOT NULL;
CREATE INDEX email_feedback_received ON email_feedback (received_at);

ALTER TABLE email_outbox ADD COLUMN feedback TEXT CHECK (feedback IN ('bounced', 'complained'));
