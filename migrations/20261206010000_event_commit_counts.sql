-- Issue 15: a sink's lag is read without walking the events behind it.
--
-- Before: the lag joined every commit after a sink's cursor to its events and
-- counted them, so a paused webhook endpoint 20,000 events behind cost each
-- read of the console's endpoint, invitation and outbox pages (and of
-- GET /v1/webhooks) tens of milliseconds, growing with the backlog.
--
-- Now each commit row carries how many events its transaction wrote. The
-- lag is the sum over the commits after the cursor plus what is left of the
-- cursor's own commit: one narrow row per transaction instead of a join per
-- event.
--
-- The count is taken by a BEFORE INSERT trigger on the commit row, which
-- `events_record_commit` inserts at COMMIT, when every insert of the
-- transaction is done (its constraint trigger is deferred; events are
-- append-only, so the count never changes). Counting there rather than in
-- `events_record_commit` keeps that function as it was: a replica still on
-- the previous version, whose commit waits on this migration's lock, then
-- inserts its row the old way and the count is filled in all the same.

ALTER TABLE event_commits ADD COLUMN event_count integer;

CREATE FUNCTION event_commits_count_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Through the (txid, seq) index: the transaction's own events.
    NEW.event_count := (SELECT count(*) FROM events WHERE txid = NEW.txid);
    RETURN NEW;
END;
$$;
CREATE TRIGGER event_commits_count BEFORE INSERT ON event_commits
    FOR EACH ROW EXECUTE FUNCTION event_commits_count_events();

UPDATE event_commits c
   SET event_count = (SELECT count(*) FROM events e WHERE e.txid = c.txid);

ALTER TABLE event_commits ALTER COLUMN event_count SET NOT NULL;
