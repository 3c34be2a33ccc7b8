-- R52: email domains a business claims. A claim carries the value its owner
-- publishes in a DNS TXT record (`invited-verification=<value>`); once the
-- record is found the claim is verified. A business claims a domain once; a
-- domain is verified for at most one business (the partial unique index),
-- while several may hold an unverified claim on it.
CREATE TABLE business_domains (
    business_id uuid NOT NULL REFERENCES businesses (id) ON DELETE CASCADE,
    domain      text NOT NULL CHECK (domain = lower(domain)),
    mode        text NOT NULL CHECK (mode IN ('suggest', 'auto_invite')),
    -- 128 random bits, hex: the TXT record is `invited-verification=` and this.
    txt_value   text NOT NULL,
    claimed_by  text NOT NULL,
    verified_at timestamptz,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (business_id, domain)
);
CREATE UNIQUE INDEX business_domains_one_verified ON business_domains (domain)
    WHERE verified_at IS NOT NULL;

-- R53: the verified domain a member invitation was created for (R52's
-- `auto_invite`); NULL for every other invitation. Accepting it adds the
-- member with `via` = `domain`.
ALTER TABLE invitations ADD COLUMN source_domain text CHECK (source_domain = lower(source_domain));
