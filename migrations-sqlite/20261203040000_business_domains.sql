-- The same table, index and column as the Postgres migration of this name
-- (R52: claimed and verified email domains; R53: the domain an invitation
-- was created for).
CREATE TABLE business_domains (
    business_id TEXT NOT NULL REFERENCES businesses (id) ON DELETE CASCADE,
    domain      TEXT NOT NULL CHECK (domain = lower(domain)),
    mode        TEXT NOT NULL CHECK (mode IN ('suggest', 'auto_invite')),
    txt_value   TEXT NOT NULL,
    claimed_by  TEXT NOT NULL,
    verified_at TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (business_id, domain)
);
CREATE UNIQUE INDEX business_domains_one_verified ON business_domains (domain)
    WHERE verified_at IS NOT NULL;

ALTER TABLE invitations ADD COLUMN source_domain TEXT CHECK (source_domain = lower(source_domain));
