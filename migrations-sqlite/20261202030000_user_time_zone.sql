-- The same column as the Postgres migration of this name (R41: a user's
-- IANA time zone; NULL writes expiries in UTC).
ALTER TABLE users ADD COLUMN time_zone TEXT;
