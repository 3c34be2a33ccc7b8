-- R49: the console's email chart reads counters instead of every attempt of
-- the hour. Scanning `email_attempts` for the last hour cost 7.7 ms at 9,000
-- attempts and grows with the rate (an hour at 50 emails/s is 180,000 rows).
--
-- The recorder adds each batch's sent and failed-for-good attempts to the
-- row of its minute (the minute's start, by the database's clock, as
-- `attempted_at` is) in the same statement as the attempts. One row per
-- minute and writing session (`writer`, the backend pid): two sessions
-- never add to the same row, so recorder lanes committing at once never
-- wait for each other's row lock. Purged after two hours by the chores,
-- like `sink_minutes`.
CREATE TABLE email_minutes (
    minute timestamptz NOT NULL,
    writer integer NOT NULL,
    sent   bigint NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed bigint NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (minute, writer)
);

-- The last two hours as they were, so the chart does not start empty.
INSERT INTO email_minutes (minute, writer, sent, failed)
SELECT date_trunc('minute', attempted_at), 0,
       count(*) FILTER (WHERE outcome = 'sent'), count(*) FILTER (WHERE outcome = 'permanent')
  FROM email_attempts
 WHERE attempted_at > now() - interval '2 hours'
 GROUP BY 1;

-- Deliveries to runtime webhook endpoints are now counted per minute in
-- `sink_minutes` too (their publisher adds each pass, as for the other
-- sinks); their `webhook_deliveries` rows stay for the endpoint's own
-- attempts list. The last two hours as they were:
INSERT INTO sink_minutes (sink, minute, sent, failed)
SELECT 'endpoint:' || endpoint_id, date_trunc('minute', attempted_at),
       count(*) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE error IS NOT NULL)
  FROM webhook_deliveries
 WHERE attempted_at > now() - interval '2 hours'
 GROUP BY 1, 2
ON CONFLICT (sink, minute) DO NOTHING;
