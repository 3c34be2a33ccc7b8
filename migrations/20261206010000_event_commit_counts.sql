-- Issue 15: a sink's lag is read without walking the events behind it.
--
-- Before: the lag joined every commit after a sink's cursor to its events and
-- counted them, so a paused webhook endpoint 20,000 events behind cost each
-- read of the console's endpoint, invitation and outbox pages (and of
-- GET /v1/webhooks) tens of milliseconds, growing with the backlog.
--
-- Now each commit row carries how many events its transaction wrote, counted
-- once by the commit trigger (at COMMIT every insert of the transaction is
-- done, and events are append-only, so the count never changes). The lag is
-- the sum over the commits after the cursor plus what is left of the
-- cursor's own commit: one narrow row per transaction instead of a join per
-- event.

ALTER TABLE event_commits ADD COLUMN event_count integer;

UPDATE event_commits c
   SET event_count = (SELECT count(*) FROM events e WHERE e.txid = c.txid);

ALTER TABLE event_commits ALTER COLUMN event_count SET NOT NULL;

CREATE OR REPLACE FUNCTION events_record_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held from here to the end of the commit, shared (see
    -- 20261201000001_event_commits_shared.sql). It is the last lock the
    -- transaction takes, so it cannot be part of a deadlock.
    PERFORM pg_advisory_xact_lock_shared(hashtext('invited.event_commits'));
    IF NOT EXISTS (SELECT 1 FROM event_commits WHERE txid = pg_current_xact_id()) THEN
        -- The first of the transaction's rows to reach its deferred trigger
        -- counts them all (through the (txid, seq) index); the others find
        -- the row and do nothing.
        INSERT INTO event_commits (txid, event_count)
        SELECT pg_current_xact_id(), count(*) FROM events WHERE txid = pg_current_xact_id();
    END IF;
    RETURN NULL;
END;
$$;
