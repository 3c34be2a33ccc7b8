-- R49: the console's failed deliveries are listed newest first by
-- `(updated_at, id)`. The index had only `updated_at`, so failed emails that
-- share a timestamp (a whole batch failed in one statement, as the
-- console's "retry all" and a dead SMTP relay both make) were all read and
-- sorted for the page's first hundred. With `id` in the index the page reads
-- its hundred rows in order and stops.
DROP INDEX email_outbox_failed;
CREATE INDEX email_outbox_failed ON email_outbox (updated_at, id) WHERE status = 'failed';
