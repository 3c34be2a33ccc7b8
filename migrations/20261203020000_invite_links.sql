-- R50: invite links. A link lets up to `max_uses` users join the business
-- with its role, until it expires or is revoked. Only the SHA-256 of its
-- code is kept: the code itself is shown once, in the answer of the create.
-- `uses` only ever grows through one conditional UPDATE (`uses < max_uses`,
-- not revoked, not expired) in the transaction that inserts the membership,
-- and the CHECK below backs it: no race, no replica, ever takes a link past
-- `max_uses`. A link's creation takes one unit of the invitation quota (R8):
-- the quota counts `invite_links.created_at` with `invitations.created_at`.
CREATE TABLE invite_links (
    id              uuid PRIMARY KEY,
    business_id     uuid NOT NULL REFERENCES businesses (id),
    created_by      text NOT NULL REFERENCES users (user_id),
    role            text NOT NULL,
    max_uses        integer NOT NULL CHECK (max_uses BETWEEN 1 AND 1000),
    uses            integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    -- Lower-case domains a redeeming user's address must be at; [] for any.
    allowed_domains jsonb NOT NULL DEFAULT '[]',
    -- Profile grants each redemption applies (R13), as invitations keep them.
    grants          jsonb NOT NULL DEFAULT '[]',
    code_hash       bytea NOT NULL UNIQUE CHECK (octet_length(code_hash) = 32),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_by      text REFERENCES users (user_id),
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
-- The quota count (R8) and the business's list.
CREATE INDEX invite_links_business_created ON invite_links (business_id, created_at);
