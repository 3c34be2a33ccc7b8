-- Issue 17: a claim updates the emails it took through the outbox's key, and
-- never reads the whole outbox to find them.
--
-- The claim picks the due ids (`email_outbox_due`, migration
-- 20261207020000_email_claim_in_index_order) and updates those rows. The
-- update was planned by the daemon's own statement, with the planner free to
-- choose: once Postgres caches a generic plan for it (after five runs on a
-- connection, when the claims asked for many emails), the picked ids are
-- estimated at a hundred or more, and on an outbox whose size the planner
-- underestimates (never analysed since it grew: the usual case after a day
-- of sends) it joined them to a sequential scan of every email ever queued.
-- The benchmark caught it: 20 ms for a claim of one email beside 6,000 sent
-- ones, the claim a third of the database's time in the lifecycle run
-- (auto_explain; BENCHMARKS.md), and it grows with the outbox.
--
-- The whole claim now runs in one PL/pgSQL function under the settings that
-- already kept the pick to its index: with sequential and bitmap scans
-- forbidden for its statement, the only plans left read the due index in
-- order and fetch each claimed row by its key, whatever the statistics say.
-- Under those settings the generic plan is that plan too, so it is made once
-- per connection (`plan_cache_mode`): left to choose, PL/pgSQL planned the
-- claim afresh at six calls out of seven, 0.8 ms each.
--
-- It also sets `synchronous_commit` off for its own transaction, as the
-- statement did (see `claim` in src/store/postgres/outbox.rs for why): a
-- transaction-local setting made inside a function outlives the function
-- unless the function's own SET clauses name it.
--
-- Arguments: the most emails to take; the lease in seconds; the claiming
-- process (its heartbeat must be fresh); after how many seconds without a
-- beat an owner counts as dead; how fresh the claimer's own beat must be.
DROP FUNCTION email_outbox_due(bigint);

CREATE FUNCTION email_outbox_claim(want bigint, lease_secs double precision, owner uuid,
                                   dead_after_secs double precision, beat_within_secs double precision)
    RETURNS SETOF email_outbox
    LANGUAGE plpgsql VOLATILE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
        WITH queued AS (
            -- Queued or retrying and due, oldest first, through the due index.
            SELECT q.id, q.available_at
              FROM email_outbox q
             WHERE q.status IN ('queued', 'retrying') AND q.available_at <= now()
             ORDER BY q.available_at, q.id
             LIMIT want
               FOR UPDATE OF q SKIP LOCKED
        ), lapsed AS (
            -- Sending, with a lapsed lease or under an owner whose beat stopped.
            SELECT l.id, l.available_at
              FROM email_outbox l
             WHERE l.status = 'sending'
               AND (l.lease_until < now()
                    OR (l.lease_owner IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM process_heartbeats h
                                        WHERE h.instance_id = l.lease_owner
                                          AND h.beat_at > now() - make_interval(secs => dead_after_secs))))
             ORDER BY l.lease_until
             LIMIT want
               FOR UPDATE OF l SKIP LOCKED
        ), due AS (
            SELECT c.id FROM (SELECT * FROM queued UNION ALL SELECT * FROM lapsed) c
             WHERE EXISTS (SELECT 1 FROM process_heartbeats h
                            WHERE h.instance_id = owner
                              AND h.beat_at > now() - make_interval(secs => beat_within_secs))
             ORDER BY c.available_at, c.id
             LIMIT want
        )
        UPDATE email_outbox o
           SET status = 'sending', attempts = o.attempts + 1, lease_owner = owner,
               lease_until = now() + make_interval(secs => lease_secs), updated_at = now()
          FROM due
         WHERE o.id = due.id
        RETURNING o.*;
END;
$$;

-- The ends of several attempts (`finish_attempts` in
-- src/store/postgres/outbox.rs): the attempt rows, this session's count of the
-- minute (migration 20261206020000_email_minutes), and each outbox row's new
-- state. Its update joined the attempts' ids to the outbox the same way as the
-- claim, and with the same cached generic plan read the whole outbox for a
-- batch of thirty (8,500 rows, 4.5 ms, in the same benchmark); under the same
-- settings it fetches each row by its key. The arrays are parallel, one
-- element per attempt.
CREATE FUNCTION email_outbox_record(attempt_ids uuid[], outbox_ids uuid[], business_ids uuid[],
                                    outcomes text[], smtp_codes int2[], details text[], durations_ms int4[],
                                    statuses text[], retry_after_secs double precision[])
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET enable_bitmapscan = off
    SET enable_seqscan = off
    SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    WITH attempts AS (
        INSERT INTO email_attempts (id, outbox_id, business_id, outcome, smtp_code, detail, duration_ms)
        SELECT * FROM unnest(attempt_ids, outbox_ids, business_ids, outcomes, smtp_codes, details, durations_ms)
    ), counted AS (
        INSERT INTO email_minutes (minute, writer, sent, failed)
        SELECT date_trunc('minute', now()), pg_backend_pid(),
               count(*) FILTER (WHERE k.outcome = 'sent'), count(*) FILTER (WHERE k.outcome = 'permanent')
          FROM unnest(outcomes) AS k(outcome)
        ON CONFLICT (minute, writer) DO UPDATE
           SET sent = email_minutes.sent + excluded.sent,
               failed = email_minutes.failed + excluded.failed
    )
    UPDATE email_outbox o
       SET status = v.status::email_status,
           sent_at = CASE WHEN v.status = 'sent' THEN now() ELSE o.sent_at END,
           lease_until = NULL,
           last_error = CASE WHEN v.status = 'sent' THEN NULL ELSE v.detail END,
           available_at = CASE WHEN v.status = 'retrying' THEN now() + make_interval(secs => v.after)
                               ELSE o.available_at END,
           updated_at = now()
      FROM unnest(outbox_ids, statuses, details, retry_after_secs) AS v(id, status, detail, after)
     WHERE o.id = v.id;
END;
$$;
