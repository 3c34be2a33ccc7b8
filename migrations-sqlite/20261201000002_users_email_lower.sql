-- The same index as the Postgres migration of this name: the member check of
-- every create compares lower(email).
CREATE INDEX users_email_lower ON users (lower(email));
