-- Issue 17: a claim reads the due emails it takes, in order, and no others.
--
-- The claim asks for the oldest due emails (`ORDER BY available_at, id`,
-- `LIMIT` the free workers). When the planner expects fewer due rows than
-- the limit (an outbox not analysed since a burst was queued: the usual case,
-- bursts come faster than statistics), it reads every due row through a
-- bitmap scan and sorts them all. The benchmark caught it: with 10,000
-- emails queued, each claim of about a hundred sorted all 10,000, 11-16 ms a
-- claim where reading the index in order takes well under one (auto_explain
-- showed the plan; BENCHMARKS.md). Over a larger backlog it grows with the
-- backlog.
--
-- The pick now runs in a function that forbids bitmap and sequential scans
-- for its one statement, so the only plan left is `email_outbox_due` read in
-- order, stopping at the limit, whatever the statistics say. PL/pgSQL, not
-- SQL: a SQL function with a SET clause is never inlined (which is what
-- keeps the settings to this statement) but is planned again at every call,
-- once per claim; PL/pgSQL keeps the plan for the session.
CREATE FUNCTION email_outbox_due(want bigint)
    RETURNS TABLE (id uuid, available_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
        SELECT o.id, o.available_at
          FROM email_outbox o
         WHERE o.status IN ('queued', 'retrying') AND o.available_at <= now()
         ORDER BY o.available_at, o.id
         LIMIT want
           FOR UPDATE OF o SKIP LOCKED;
END;
$$;
