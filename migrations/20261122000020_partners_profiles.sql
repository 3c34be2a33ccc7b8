-- Issue 4: partnerships (R19–R21), profiles and the Publisher grants on them
-- (R23, R24). Every table carries the business_id it shards by. The database
-- enforces what it can: one live partnership and one pending partner
-- invitation per pair, one grant per grantee, no grant whose parent or
-- carrying membership is gone (ON DELETE CASCADE backs what the use cases
-- already delete, with their events, in the same transaction).

-- One pending partner invitation per pair of businesses, whichever sent it.
CREATE UNIQUE INDEX invitations_one_pending_per_pair
    ON invitations (LEAST(business_id, partner_business_id), GREATEST(business_id, partner_business_id))
    WHERE status = 'pending' AND kind <> 'member';
-- Incoming partner invitations (`direction=incoming`).
CREATE INDEX invitations_partner_business ON invitations (partner_business_id, id)
    WHERE partner_business_id IS NOT NULL;
ALTER TABLE invitations ADD CONSTRAINT invitations_partner_not_self
    CHECK (partner_business_id IS NULL OR partner_business_id <> business_id);

-- A two-sided link. `business_id` is the side that sent the invitation; an
-- ended partnership stays as history with `ended_at`.
CREATE TABLE partnerships (
    id                  uuid PRIMARY KEY,
    business_id         uuid NOT NULL REFERENCES businesses (id),
    partner_business_id uuid NOT NULL REFERENCES businesses (id),
    invitation_id       uuid REFERENCES invitations (id),
    direction           text NOT NULL CHECK (direction IN ('invite', 'request')),
    established_at      timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz,
    ended_by            text REFERENCES users (user_id),
    CHECK (business_id <> partner_business_id),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL))
);
CREATE UNIQUE INDEX partnerships_one_live_per_pair
    ON partnerships (LEAST(business_id, partner_business_id), GREATEST(business_id, partner_business_id))
    WHERE ended_at IS NULL;
CREATE INDEX partnerships_business ON partnerships (business_id) WHERE ended_at IS NULL;
CREATE INDEX partnerships_partner ON partnerships (partner_business_id) WHERE ended_at IS NULL;

CREATE TABLE profiles (
    id          uuid PRIMARY KEY,
    business_id uuid NOT NULL REFERENCES businesses (id),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_by  text NOT NULL REFERENCES users (user_id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_id, id)
);

CREATE TYPE profile_permission AS ENUM ('publisher');

-- A grant of a permission on a profile, to a user or to a partner business.
-- `holder_business_id` is the business whose membership carries a user grant
-- (the owner for a direct grant, the partner for a derived one) or the
-- grantee business itself.
CREATE TABLE profile_grants (
    id                  uuid PRIMARY KEY,
    business_id         uuid NOT NULL,
    profile_id          uuid NOT NULL,
    permission          profile_permission NOT NULL,
    grantee_user_id     text REFERENCES users (user_id),
    grantee_business_id uuid REFERENCES businesses (id),
    holder_business_id  uuid NOT NULL REFERENCES businesses (id),
    parent_grant_id     uuid REFERENCES profile_grants (id) ON DELETE CASCADE,
    granted_by          text NOT NULL REFERENCES users (user_id),
    invitation_id       uuid REFERENCES invitations (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (business_id, profile_id) REFERENCES profiles (business_id, id) ON DELETE CASCADE,
    -- A user grant lives only as long as the membership that carries it.
    FOREIGN KEY (holder_business_id, grantee_user_id) REFERENCES members (business_id, user_id) ON DELETE CASCADE,
    CHECK ((grantee_user_id IS NULL) <> (grantee_business_id IS NULL)),
    -- A business grant: direct, to another business, held by the grantee.
    CHECK (grantee_business_id IS NULL OR (parent_grant_id IS NULL
           AND grantee_business_id <> business_id AND holder_business_id = grantee_business_id)),
    -- A user grant is direct exactly when the owning business carries it.
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
