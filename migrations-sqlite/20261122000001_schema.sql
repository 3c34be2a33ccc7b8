-- The whole schema for the embedded (SQLite) store, equivalent to the
-- Postgres migrations in ../migrations: the same tables, CHECKs, partial
-- unique indexes and append-only trigger. Dialect differences:
-- * uuids are TEXT in hyphenated form (lower case, so text order is uuid
--   order), timestamps TEXT in RFC 3339 written by the adapter (always UTC
--   `+00:00`, so text order is time order), bytea is BLOB, jsonb is TEXT;
-- * enums are CHECKs on TEXT;
-- * `events.seq` is an autoincrement in insertion order. SQLite runs one
--   write transaction at a time, so insertion order is commit order and the
--   sequence is the sinks' cursor (Postgres needs `event_commits` for that).

CREATE TABLE daemon_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL CHECK (length(value) >= 32)
);

CREATE TABLE users (
    user_id      TEXT PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 200),
    email        TEXT NOT NULL,
    display_name TEXT,
    locale       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX users_email ON users (email);

CREATE TABLE businesses (
    id          TEXT PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role_preset TEXT NOT NULL CHECK (role_preset IN ('business_manager', 'account_levels')),
    seat_limit  INTEGER CHECK (seat_limit IS NULL OR seat_limit >= 1),
    locale      TEXT,
    require_2fa TEXT NOT NULL DEFAULT 'off' CHECK (require_2fa IN ('off', 'managers', 'all')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE members (
    business_id TEXT NOT NULL REFERENCES businesses (id),
    user_id     TEXT NOT NULL REFERENCES users (user_id),
    role        TEXT NOT NULL,
    joined_at   TEXT NOT NULL,
    PRIMARY KEY (business_id, user_id)
);
CREATE UNIQUE INDEX members_one_owner ON members (business_id) WHERE role = 'owner';

CREATE TABLE invitations (
    id                  TEXT PRIMARY KEY,
    business_id         TEXT NOT NULL REFERENCES businesses (id),
    kind                TEXT NOT NULL CHECK (kind IN ('member', 'partner_invite', 'partner_request')),
    invited_by          TEXT NOT NULL REFERENCES users (user_id),
    email               TEXT,
    partner_business_id TEXT REFERENCES businesses (id),
    role                TEXT,
    message             TEXT CHECK (length(message) <= 1000),
    locale              TEXT NOT NULL,
    grants              TEXT NOT NULL DEFAULT '[]',
    token_hash          BLOB NOT NULL UNIQUE,
    token_nonce         BLOB NOT NULL CHECK (length(token_nonce) >= 16),
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')),
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    accepted_at         TEXT,
    accepted_by         TEXT REFERENCES users (user_id),
    declined_at         TEXT,
    cancelled_at        TEXT,
    expired_at          TEXT,
    renewed_from        TEXT REFERENCES invitations (id),
    CHECK (expires_at > created_at),
    CHECK ((status = 'accepted') = (accepted_at IS NOT NULL)),
    CHECK ((status = 'accepted') = (accepted_by IS NOT NULL)),
    CHECK ((status = 'declined') = (declined_at IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL)),
    CHECK (
        (kind = 'member' AND email IS NOT NULL AND role IS NOT NULL AND partner_business_id IS NULL)
        OR (kind <> 'member' AND email IS NULL AND partner_business_id IS NOT NULL)
    ),
    CONSTRAINT invitations_partner_not_self
        CHECK (partner_business_id IS NULL OR partner_business_id <> business_id)
);
CREATE UNIQUE INDEX invitations_one_pending_per_address
    ON invitations (business_id, email) WHERE status = 'pending' AND kind = 'member';
CREATE UNIQUE INDEX invitations_one_pending_per_pair
    ON invitations (min(business_id, partner_business_id), max(business_id, partner_business_id))
    WHERE status = 'pending' AND kind <> 'member';
CREATE INDEX invitations_business_created ON invitations (business_id, created_at);
CREATE INDEX invitations_business_id ON invitations (business_id, id);
CREATE INDEX invitations_pending_expiry ON invitations (expires_at) WHERE status = 'pending';
CREATE INDEX invitations_pending_created ON invitations (created_at) WHERE status = 'pending' AND kind = 'member';
CREATE INDEX invitations_partner_business ON invitations (partner_business_id, id)
    WHERE partner_business_id IS NOT NULL;

-- Every change of state, append-only (R16). `seq` numbers events in commit
-- order (see the header).
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    business_id   TEXT NOT NULL REFERENCES businesses (id),
    invitation_id TEXT REFERENCES invitations (id),
    type          TEXT NOT NULL,
    actor_user_id TEXT,
    from_status   TEXT CHECK (from_status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')),
    to_status     TEXT CHECK (to_status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')),
    data          TEXT NOT NULL DEFAULT '{}',
    occurred_at   TEXT NOT NULL
);
CREATE INDEX events_invitation ON events (invitation_id, id) WHERE invitation_id IS NOT NULL;
CREATE INDEX events_business ON events (business_id, id);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE idempotency_keys (
    api_key_name  TEXT NOT NULL,
    key           TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  BLOB NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BLOB,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (api_key_name, key),
    CHECK ((status IS NULL) = (body IS NULL))
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE email_outbox (
    id             TEXT PRIMARY KEY,
    business_id    TEXT NOT NULL REFERENCES businesses (id),
    invitation_id  TEXT REFERENCES invitations (id),
    template       TEXT NOT NULL,
    locale         TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    recipient_name TEXT,
    context        TEXT NOT NULL,
    message_id     TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'failed', 'cancelled')),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at   TEXT NOT NULL,
    lease_until    TEXT,
    last_error     TEXT,
    sent_at        TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CHECK ((status = 'sending') = (lease_until IS NOT NULL))
);
CREATE INDEX email_outbox_due ON email_outbox (available_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX email_outbox_leased ON email_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX email_outbox_invitation ON email_outbox (invitation_id, created_at);

CREATE TABLE email_attempts (
    id           TEXT PRIMARY KEY,
    outbox_id    TEXT NOT NULL REFERENCES email_outbox (id),
    business_id  TEXT NOT NULL REFERENCES businesses (id),
    attempted_at TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent')),
    smtp_code    INTEGER,
    detail       TEXT,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0)
);
CREATE INDEX email_attempts_outbox ON email_attempts (outbox_id, attempted_at);

CREATE TABLE invitation_reminders (
    invitation_id TEXT NOT NULL REFERENCES invitations (id),
    business_id   TEXT NOT NULL REFERENCES businesses (id),
    offset_secs   INTEGER NOT NULL CHECK (offset_secs > 0),
    outbox_id     TEXT NOT NULL REFERENCES email_outbox (id) DEFERRABLE INITIALLY DEFERRED,
    queued_at     TEXT NOT NULL,
    PRIMARY KEY (invitation_id, offset_secs)
);

CREATE TABLE partnerships (
    id                  TEXT PRIMARY KEY,
    business_id         TEXT NOT NULL REFERENCES businesses (id),
    partner_business_id TEXT NOT NULL REFERENCES businesses (id),
    invitation_id       TEXT REFERENCES invitations (id),
    direction           TEXT NOT NULL CHECK (direction IN ('invite', 'request')),
    established_at      TEXT NOT NULL,
    ended_at            TEXT,
    ended_by            TEXT REFERENCES users (user_id),
    CHECK (business_id <> partner_business_id),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL))
);
CREATE UNIQUE INDEX partnerships_one_live_per_pair
    ON partnerships (min(business_id, partner_business_id), max(business_id, partner_business_id))
    WHERE ended_at IS NULL;
CREATE INDEX partnerships_business ON partnerships (business_id) WHERE ended_at IS NULL;
CREATE INDEX partnerships_partner ON partnerships (partner_business_id) WHERE ended_at IS NULL;

CREATE TABLE profiles (
    id          TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_by  TEXT NOT NULL REFERENCES users (user_id),
    created_at  TEXT NOT NULL,
    UNIQUE (business_id, id)
);

CREATE TABLE profile_grants (
    id                  TEXT PRIMARY KEY,
    business_id         TEXT NOT NULL,
    profile_id          TEXT NOT NULL,
    permission          TEXT NOT NULL CHECK (permission IN ('publisher')),
    grantee_user_id     TEXT REFERENCES users (user_id),
    grantee_business_id TEXT REFERENCES businesses (id),
    holder_business_id  TEXT NOT NULL REFERENCES businesses (id),
    parent_grant_id     TEXT REFERENCES profile_grants (id) ON DELETE CASCADE,
    granted_by          TEXT NOT NULL REFERENCES users (user_id),
    invitation_id       TEXT REFERENCES invitations (id),
    created_at          TEXT NOT NULL,
    FOREIGN KEY (business_id, profile_id) REFERENCES profiles (business_id, id) ON DELETE CASCADE,
    FOREIGN KEY (holder_business_id, grantee_user_id) REFERENCES members (business_id, user_id) ON DELETE CASCADE,
    CHECK ((grantee_user_id IS NULL) <> (grantee_business_id IS NULL)),
    CHECK (grantee_business_id IS NULL OR (parent_grant_id IS NULL
           AND grantee_business_id <> business_id AND holder_business_id = grantee_business_id)),
    CHECK (grantee_user_id IS NULL OR ((parent_grant_id IS NULL) = (holder_business_id = business_id)))
);
CREATE UNIQUE INDEX profile_grants_one_per_business
    ON profile_grants (profile_id, permission, grantee_business_id) WHERE grantee_business_id IS NOT NULL;
CREATE UNIQUE INDEX profile_grants_one_per_user
    ON profile_grants (profile_id, permission, grantee_user_id, holder_business_id) WHERE grantee_user_id IS NOT NULL;
CREATE INDEX profile_grants_user ON profile_grants (grantee_user_id) WHERE grantee_user_id IS NOT NULL;
CREATE INDEX profile_grants_parent ON profile_grants (parent_grant_id) WHERE parent_grant_id IS NOT NULL;
CREATE INDEX profile_grants_between ON profile_grants (business_id, grantee_business_id)
    WHERE grantee_business_id IS NOT NULL;

CREATE TABLE event_cursors (
    sink         TEXT PRIMARY KEY,
    commit_seq   INTEGER NOT NULL DEFAULT 0,
    event_seq    INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    available_at TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
);
