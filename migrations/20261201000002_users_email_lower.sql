-- Issue 7: "is this address already a member of the business?" (every
-- create) compares lower(email); the plain `users_email` index cannot serve
-- that, so each create scanned every user (1.9 ms at 3,700 users, and
-- linear in them; it also held the business lock meanwhile, so creates and
-- accepts of that business queued behind it: BENCHMARKS.md).
CREATE INDEX users_email_lower ON users (lower(email));
