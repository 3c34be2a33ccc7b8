-- Issue 14 (R43, R44): what comes back after the 250. Every bounce or
-- complaint received is kept here, tied to its email or not: an operator
-- can see what arrived and why nothing happened. `outcome` says what the
-- daemon did with it: `applied` (tied to an email and acted on), `unmatched`
-- (no email of ours; dropped), `ignored` (tied, but not a failure, e.g. a
-- "delivered" notification), `malformed` (not a report the daemon reads).
CREATE TABLE email_feedback (
    id          uuid PRIMARY KEY,
    received_at timestamptz NOT NULL,
    -- Where it came from: `smtp` (the inbound listener); later the
    -- providers' webhooks.
    source      text NOT NULL,
    kind        text CHECK (kind IN ('hard_bounce', 'soft_bounce', 'complaint')),
    outcome     text NOT NULL CHECK (outcome IN ('applied', 'unmatched', 'ignored', 'malformed')),
    outbox_id   uuid REFERENCES email_outbox (id),
    -- How it was tied to the email.
    matched_by  text CHECK (matched_by IN ('return_path', 'message_id', 'provider_id', 'address')),
    -- The RFC 3463 status (`5.1.1`) and the diagnostic text, or the
    -- complaint's feedback type.
    status_code text,
    detail      text,
    -- The recipient the report is about (`Final-Recipient`), the address it
    -- was sent to (the return path), the Message-ID it names.
    recipient   text,
    envelope_to text,
    message_id  text,
    -- Why it was not applied.
    error       text,
    CHECK ((outbox_id IS NULL) = (matched_by IS NULL))
);
CREATE INDEX email_feedback_outbox ON email_feedback (outbox_id, received_at) WHERE outbox_id IS NOT NULL;
CREATE INDEX email_feedback_received ON email_feedback (received_at);

-- A hard bounce or a complaint marks the email for good: its delivery
-- status reads `bounced` or `complained` from then on (the sending status
-- stays what it was: it was sent).
ALTER TABLE email_outbox ADD COLUMN feedback text CHECK (feedback IN ('bounced', 'complained'));
