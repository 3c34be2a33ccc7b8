-- R49: every console action is the event `console.action`, including those
-- on runtime webhook endpoints (pause, resume, replay), which belong to no
-- business. Such operator events carry no business: `business_id` may now
-- be NULL. Every event written by a business's use case still names its
-- business (the code gives those no way to leave it out).
ALTER TABLE events ALTER COLUMN business_id DROP NOT NULL;

-- The console's webhook endpoints page reads the latest operator events.
CREATE INDEX events_operator ON events (occurred_at) WHERE business_id IS NULL;
