-- Issue 12, item 3: an email cut off by a crash waited out its whole lease
-- (`delivery.lease`, 60 s by default) before another process took it. Each
-- process now beats a row here every few seconds; a claim records who holds
-- the lease (`email_outbox.lease_owner`), and an email `sending` under a
-- process whose beat stopped (or whose row is gone) is claimable again at
-- once, lease or not. A restarted process has a new instance id.
CREATE TABLE process_heartbeats (
    instance_id uuid PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL
);

-- The process that holds (or last held) the row's lease; NULL for rows
-- claimed by a build without heartbeats, which wait out their lease.
ALTER TABLE email_outbox ADD COLUMN lease_owner uuid;
