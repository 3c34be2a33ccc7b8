-- The same table as the Postgres migration of this name (R50: invite links;
-- only the code's hash is kept; `uses` never passes `max_uses`).
CREATE TABLE invite_links (
    id              TEXT PRIMARY KEY,
    business_id     TEXT NOT NULL REFERENCES businesses (id),
    created_by      TEXT NOT NULL REFERENCES users (user_id),
    role            TEXT NOT NULL,
    max_uses        INTEGER NOT NULL CHECK (max_uses BETWEEN 1 AND 1000),
    uses            INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    allowed_domains TEXT NOT NULL DEFAULT '[]',
    grants          TEXT NOT NULL DEFAULT '[]',
    code_hash       BLOB NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_by      TEXT REFERENCES users (user_id),
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX invite_links_business_created ON invite_links (business_id, created_at);
