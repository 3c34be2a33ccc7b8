-- The same tables as the Postgres migration of this name (R51: join
-- requests; R53: their events name them).
CREATE TABLE join_requests (
    id          TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    user_id     TEXT NOT NULL REFERENCES users (user_id),
    message     TEXT CHECK (length(message) <= 1000),
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    role        TEXT,
    decided_by  TEXT REFERENCES users (user_id),
    decided_at  TEXT,
    expired_at  TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK (expires_at > created_at),
    CHECK ((status = 'approved') = (role IS NOT NULL)),
    CHECK ((status IN ('approved', 'denied')) = (decided_by IS NOT NULL)),
    CHECK ((status IN ('approved', 'denied')) = (decided_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL))
);
CREATE UNIQUE INDEX join_requests_one_pending
    ON join_requests (business_id, user_id) WHERE status = 'pending';
CREATE INDEX join_requests_user_created ON join_requests (user_id, created_at);
CREATE INDEX join_requests_business_id ON join_requests (business_id, id);
CREATE INDEX join_requests_pending_expiry ON join_requests (expires_at) WHERE status = 'pending';

ALTER TABLE events ADD COLUMN join_request_id TEXT REFERENCES join_requests (id);
CREATE INDEX events_join_request ON events (join_request_id, id) WHERE join_request_id IS NOT NULL;

ALTER TABLE email_outbox ADD COLUMN join_request_id TEXT REFERENCES join_requests (id);
CREATE INDEX email_outbox_join_request ON email_outbox (join_request_id, created_at)
    WHERE join_request_id IS NOT NULL;
