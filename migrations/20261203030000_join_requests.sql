-- R51: join requests. A user asks to join a business by its public Business
-- ID; the owner or a member with `members.invite` approves (with a role) or
-- denies it; a pending one expires like an invitation. One pending request
-- per user and business (the partial unique index); the per-user rate limit
-- counts rows by `(user_id, created_at)`.
CREATE TABLE join_requests (
    id          uuid PRIMARY KEY,
    business_id uuid NOT NULL REFERENCES businesses (id),
    user_id     text NOT NULL REFERENCES users (user_id),
    message     text CHECK (length(message) <= 1000),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    -- The role the approver chose (R3); set only when approved.
    role        text,
    -- Who approved or denied it, and when.
    decided_by  text REFERENCES users (user_id),
    decided_at  timestamptz,
    expired_at  timestamptz,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
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

-- R53: a request's events (`join_request.*` and the `member.added` of its
-- approval) name it, so its timeline reads them.
ALTER TABLE events ADD COLUMN join_request_id uuid REFERENCES join_requests (id);
CREATE INDEX events_join_request ON events (join_request_id, id) WHERE join_request_id IS NOT NULL;

-- The emails of a request (to its approvers, and its outcome) name it too,
-- so their delivery attempts are on its timeline.
ALTER TABLE email_outbox ADD COLUMN join_request_id uuid REFERENCES join_requests (id);
CREATE INDEX email_outbox_join_request ON email_outbox (join_request_id, created_at)
    WHERE join_request_id IS NOT NULL;
