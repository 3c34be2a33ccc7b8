-- R41: a user's IANA time zone (`America/Los_Angeles`), set by
-- `PUT /v1/users/{id}`. The expiry in an email is written in the
-- recipient's zone; NULL (unknown) writes it in UTC. The daemon checks the
-- name against its zone database before writing it.
ALTER TABLE users ADD COLUMN time_zone text;
