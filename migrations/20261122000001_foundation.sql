-- The foundation: users, businesses, members, invitations, their append-only
-- events, idempotency keys and the email outbox. The database enforces what it
-- can: enums for states, CHECKs tying timestamps to states, and a partial unique
-- index for "one pending invitation per business and address" (R13).

CREATE TYPE invitation_status AS ENUM ('pending', 'accepted', 'declined', 'cancelled', 'expired');
CREATE TYPE invitation_kind AS ENUM ('member', 'partner_invite', 'partner_request');
CREATE TYPE email_status AS ENUM ('queued', 'sending', 'sent', 'retrying', 'failed');

-- Secrets the daemon generates itself when none is configured (the token key).
CREATE TABLE daemon_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL CHECK (octet_length(value) >= 32)
);

CREATE TABLE users (
    user_id      text PRIMARY KEY CHECK (char_length(user_id) BETWEEN 1 AND 200),
    email        text NOT NULL,
    display_name text,
    locale       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_email ON users (email);

CREATE TABLE businesses (
    id          uuid PRIMARY KEY,
    public_id   text NOT NULL UNIQUE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    role_preset text NOT NULL CHECK (role_preset IN ('business_manager', 'account_levels')),
    seat_limit  integer CHECK (seat_limit IS NULL OR seat_limit >= 1),
    locale      text,
    require_2fa text NOT NULL DEFAULT 'off' CHECK (require_2fa IN ('off', 'managers', 'all')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    business_id uuid NOT NULL REFERENCES businesses (id),
    user_id     text NOT NULL REFERENCES users (user_id),
    role        text NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_id, user_id)
);
-- Exactly one owner at a time (the "at least one" half is kept by R4/R5).
CREATE UNIQUE INDEX members_one_owner ON members (business_id) WHERE role = 'owner';

CREATE TABLE invitations (
    id                  uuid PRIMARY KEY,
    business_id         uuid NOT NULL REFERENCES businesses (id),
    kind                invitation_kind NOT NULL,
    invited_by          text NOT NULL REFERENCES users (user_id),
    email               text,
    partner_business_id uuid REFERENCES businesses (id),
    role                text,
    message             text CHECK (char_length(message) <= 1000),
    locale              text NOT NULL,
    grants              jsonb NOT NULL DEFAULT '[]',
    token_hash          bytea NOT NULL UNIQUE,
    token_nonce         bytea NOT NULL CHECK (octet_length(token_nonce) >= 16),
    status              invitation_status NOT NULL DEFAULT 'pending',
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    accepted_at         timestamptz,
    accepted_by         text REFERENCES users (user_id),
    declined_at         timestamptz,
    cancelled_at        timestamptz,
    expired_at          timestamptz,
    renewed_from        uuid REFERENCES invitations (id),
    CHECK (expires_at > created_at),
    CHECK ((status = 'accepted') = (accepted_at IS NOT NULL)),
    CHECK ((status = 'accepted') = (accepted_by IS NOT NULL)),
    CHECK ((status = 'declined') = (declined_at IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL)),
    CHECK (
        (kind = 'member' AND email IS NOT NULL AND role IS NOT NULL AND partner_business_id IS NULL)
        OR (kind <> 'member' AND email IS NULL AND partner_business_id IS NOT NULL)
    )
);
CREATE UNIQUE INDEX invitations_one_pending_per_address
    ON invitations (business_id, email) WHERE status = 'pending' AND kind = 'member';
-- The quota window (R8) and listings, always scoped by business.
CREATE INDEX invitations_business_created ON invitations (business_id, created_at);
CREATE INDEX invitations_business_id ON invitations (business_id, id);
CREATE INDEX invitations_pending_expiry ON invitations (expires_at) WHERE status = 'pending';

-- Every change of state, append-only (R16).
CREATE TABLE events (
    id            uuid PRIMARY KEY,
    business_id   uuid NOT NULL REFERENCES businesses (id),
    invitation_id uuid REFERENCES invitations (id),
    type          text NOT NULL,
    actor_user_id text,
    from_status   invitation_status,
    to_status     invitation_status,
    data          jsonb NOT NULL DEFAULT '{}',
    occurred_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_invitation ON events (invitation_id, id) WHERE invitation_id IS NOT NULL;
CREATE INDEX events_business ON events (business_id, id);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

-- Idempotency-Key of POST requests, kept 24 hours per API key.
CREATE TABLE idempotency_keys (
    api_key_name  text NOT NULL,
    key           text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        smallint,
    headers       jsonb,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_name, key),
    CHECK ((status IS NULL) = (body IS NULL))
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The email outbox (R29): written in the same transaction as the change that
-- causes the email; the Message-ID is fixed here and reused on every attempt.
CREATE TABLE email_outbox (
    id             uuid PRIMARY KEY,
    business_id    uuid NOT NULL REFERENCES businesses (id),
    invitation_id  uuid REFERENCES invitations (id),
    template       text NOT NULL,
    locale         text NOT NULL,
    recipient      text NOT NULL,
    recipient_name text,
    context        jsonb NOT NULL,
    message_id     text NOT NULL UNIQUE,
    status         email_status NOT NULL DEFAULT 'queued',
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at   timestamptz NOT NULL DEFAULT now(),
    lease_until    timestamptz,
    last_error     text,
    sent_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CHECK ((status = 'sending') = (lease_until IS NOT NULL))
);
CREATE INDEX email_outbox_due ON email_outbox (available_at) WHERE status IN ('queued', 'retrying');
CREATE INDEX email_outbox_leased ON email_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX email_outbox_invitation ON email_outbox (invitation_id, created_at);

-- Every delivery attempt with the server's answer (R34).
CREATE TABLE email_attempts (
    id           uuid PRIMARY KEY,
    outbox_id    uuid NOT NULL REFERENCES email_outbox (id),
    business_id  uuid NOT NULL REFERENCES businesses (id),
    attempted_at timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent')),
    smtp_code    smallint,
    detail       text,
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0)
);
CREATE INDEX email_attempts_outbox ON email_attempts (outbox_id, attempted_at);
