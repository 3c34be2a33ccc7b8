-- The same table as the Postgres migration of this name (R49: the email
-- chart's counters, per minute). SQLite has one writer at a time, so
-- `writer` is always 0. Times are the TEXT of a chrono time, truncated to
-- the minute by the store.
CREATE TABLE email_minutes (
    minute TEXT NOT NULL,
    writer INTEGER NOT NULL,
    sent   INTEGER NOT NULL DEFAULT 0 CHECK (sent >= 0),
    failed INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (minute, writer)
);

-- The last two hours as they were (minutes written as the store writes
-- them: `YYYY-MM-DDTHH:MM:00+00:00`).
INSERT INTO email_minutes (minute, writer, sent, failed)
SELECT strftime('%Y-%m-%dT%H:%M:00+00:00', attempted_at), 0,
       sum(outcome = 'sent'), sum(outcome = 'permanent')
  FROM email_attempts
 WHERE attempted_at > strftime('%Y-%m-%dT%H:%M:%S', 'now', '-2 hours')
 GROUP BY 1;

-- Deliveries to runtime webhook endpoints are counted in `sink_minutes` from
-- now on, as in the Postgres migration; the last two hours as they were:
INSERT INTO sink_minutes (sink, minute, sent, failed)
SELECT 'endpoint:' || endpoint_id, strftime('%Y-%m-%dT%H:%M:00+00:00', attempted_at),
       sum(error IS NULL), sum(error IS NOT NULL)
  FROM webhook_deliveries
 WHERE attempted_at > strftime('%Y-%m-%dT%H:%M:%S', 'now', '-2 hours')
 GROUP BY 1, 2
ON CONFLICT (sink, minute) DO NOTHING;
