-- R48: webhook endpoints added at runtime through the API, beside the
-- `[[webhooks]]` of the configuration. Each has its own cursor in
-- `event_cursors` (sink `endpoint:<id>`), so one endpoint failing never
-- holds up another, and keeps its per-endpoint order.
CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    url                   text NOT NULL,
    description           text,
    -- Comma-separated event types it wants; NULL: every type.
    event_types           text,
    -- `whsec_<base64>`: it signs every delivery, so it is kept as is.
    secret                text NOT NULL,
    -- After a rotation the old secret keeps signing until this time.
    previous_secret       text,
    previous_secret_until timestamptz,
    disabled              boolean NOT NULL DEFAULT false,
    disabled_reason       text,
    -- The first failure of the current run of failures (NULL after a
    -- success): `webhooks.disable_after` is measured from it.
    failing_since         timestamptz,
    last_error            text,
    last_success_at       timestamptz,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
);

-- Every delivery attempt to a runtime endpoint: `status` is the HTTP status
-- the endpoint answered (NULL when there was no answer).
CREATE TABLE webhook_deliveries (
    id           uuid PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     uuid NOT NULL,
    attempted_at timestamptz NOT NULL,
    status       integer,
    duration_ms  bigint NOT NULL,
    error        text
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
