-- Reminders (R38: only for invitations delivered by email) look for pending
-- member invitations by age. Their index covered every pending member
-- invitation, so it matched the create's conflict check too (pending
-- invitations of one business, and their count), and on a table whose
-- statistics lag behind its rows (never analysed, or a burst of pending
-- invitations since the last analyse) the planner took it as the smallest
-- index that fits: the check then read every pending invitation of every
-- business for each create (5 ms per create at 2,500 pending, BENCHMARKS.md).
-- With the reminders' own `delivery_mode = 'email'` in its predicate only
-- the reminder query, which says so, can use it; the conflict check is left
-- with `invitations_one_pending_per_address`, which starts with the business.
DROP INDEX invitations_pending_created;
CREATE INDEX invitations_pending_created ON invitations (created_at)
    WHERE status = 'pending' AND kind = 'member' AND delivery_mode = 'email';
