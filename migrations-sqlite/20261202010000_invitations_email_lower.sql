-- The same index as the Postgres migration of this name: a user's
-- invitations in every business are found by lower(email) (R37).
CREATE INDEX invitations_member_email_lower ON invitations (lower(email)) WHERE kind = 'member';
