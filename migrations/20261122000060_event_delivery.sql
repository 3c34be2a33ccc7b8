-- Issue 6: outbound events (R17). The `events` table is the outbox: each sink
-- (one per webhook URL, one for NATS) reads it through its own cursor, in the
-- order the writing transactions COMMITTED.
--
-- Why commit order and not `txid` order: a transaction gets its xid at its
-- first write or row lock, so one that locked a business first and then
-- waited for an invitation lock holds an OLDER xid than the transaction it
-- waited for, yet commits after it. Ordering by xid would deliver that
-- invitation's events backwards. Commit order is what the row locks order.

-- Insertion order inside a transaction, and the writing transaction.
ALTER TABLE events ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_txid ON events (txid, seq);

-- One row per committed transaction that wrote events, numbered in commit
-- order. The number is taken at commit time (a deferred trigger, after every
-- other statement of the transaction) under a transaction-level advisory
-- lock, which Postgres releases only after the commit is visible. So when a
-- reader sees `commit_seq = n`, every transaction with a smaller number has
-- committed and is visible too (or rolled back, leaving a gap): a cursor on
-- `commit_seq` never skips a late commit.
CREATE TABLE event_commits (
    commit_seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid         xid8 NOT NULL UNIQUE,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Events written before this migration: one "transaction" (they all got this
-- migration's txid above), delivered first, in insertion order.
INSERT INTO event_commits (txid)
SELECT DISTINCT txid FROM events;

CREATE FUNCTION events_record_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Held from here to the end of the commit: commits of event-writing
    -- transactions are numbered one at a time. It is the last lock the
    -- transaction takes, so it cannot be part of a deadlock.
    PERFORM pg_advisory_xact_lock(hashtext('invited.event_commits'));
    IF NOT EXISTS (SELECT 1 FROM event_commits WHERE txid = pg_current_xact_id()) THEN
        INSERT INTO event_commits (txid) VALUES (pg_current_xact_id());
        -- Delivered to listeners only if this transaction commits.
        PERFORM pg_notify('invited_events', '');
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER events_commit_order AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION events_record_commit();

-- Where each sink is: the last event it delivered, as (commit_seq, seq), and
-- who may deliver for it now. One replica at a time holds a sink's lease;
-- the lease is taken and renewed by short statements, never held as a row
-- lock across a network call.
CREATE TABLE event_cursors (
    sink         text PRIMARY KEY,
    commit_seq   bigint NOT NULL DEFAULT 0,
    event_seq    bigint NOT NULL DEFAULT 0,
    lease_owner  uuid,
    lease_until  timestamptz,
    -- Failed attempts at the event after the cursor; 0 after a success.
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    -- Backoff: the next attempt is not made before this.
    available_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
);
