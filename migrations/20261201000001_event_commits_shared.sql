-- Issue 7: commits that write events no longer take turns.
--
-- Before: the commit trigger took an EXCLUSIVE transaction-level advisory
-- lock, held through the WAL flush, so event-writing commits were numbered
-- (and flushed) one at a time, and could never share a flush. It also sent
-- NOTIFY, whose own commit-time lock (Postgres serialises every notifying
-- commit in the cluster, through its flush) did the same.
--
-- Now: the trigger takes the lock SHARED. Shared holders do not wait for each
-- other, so these commits flush together again. A reader that wants a safe
-- bound takes the same lock EXCLUSIVE for an instant (`event_commits_horizon`
-- below): it is granted only when no transaction is between taking its
-- number and becoming visible, so every number at or below the largest one
-- it then sees is committed and visible, or rolled back (a gap). Numbers are
-- still taken at commit, after the transaction's row locks, so two commands
-- on one invitation (which serialise on its row lock) are numbered in the
-- order they committed.
--
-- Wake-ups moved out of the transaction: the adapter signals its own process
-- after the commit and tells other replicas with a NOTIFY of its own
-- (src/store/postgres/wake.rs).

CREATE OR REPLACE FUNCTION events_record_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held from here to the end of the commit, shared: see the header. It is
    -- the last lock the transaction takes, so it cannot be part of a deadlock.
    PERFORM pg_advisory_xact_lock_shared(hashtext('invited.event_commits'));
    IF NOT EXISTS (SELECT 1 FROM event_commits WHERE txid = pg_current_xact_id()) THEN
        INSERT INTO event_commits (txid) VALUES (pg_current_xact_id());
    END IF;
    RETURN NULL;
END;
$$;

-- The largest commit number below which nothing is still on its way: called
-- on its own (one statement, READ COMMITTED), before reading events up to it.
-- VOLATILE, so the count is read with a snapshot taken after the lock.
CREATE FUNCTION event_commits_horizon() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    bound bigint;
BEGIN
    -- Never wait long behind a transaction that took its number and stalls:
    -- the reader gives up and tries again on its next pass.
    PERFORM set_config('lock_timeout', '5s', true);
    PERFORM pg_advisory_xact_lock(hashtext('invited.event_commits'));
    SELECT coalesce(max(commit_seq), 0) INTO bound FROM event_commits;
    RETURN bound;
END;
$$;
