-- Issue 3: reminders (R32) and emails that are withdrawn before any attempt.

-- A reminder is queued at most once per invitation and offset: the primary
-- key makes a second replica's insert a no-op, and the row is written in the
-- same transaction as the reminder's outbox row.
CREATE TABLE invitation_reminders (
    invitation_id uuid NOT NULL REFERENCES invitations (id),
    business_id   uuid NOT NULL REFERENCES businesses (id),
    -- The configured offset after creation (`invitations.reminders`), in seconds.
    offset_secs   bigint NOT NULL CHECK (offset_secs > 0),
    -- Deferred: the reminder row is written first, so that a replica that
    -- lost the race queues no email at all.
    outbox_id     uuid NOT NULL REFERENCES email_outbox (id) DEFERRABLE INITIALLY DEFERRED,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invitation_id, offset_secs)
);

-- A queued reminder whose invitation is no longer pending when its turn
-- comes is withdrawn, not failed: nothing was attempted.
ALTER TYPE email_status ADD VALUE IF NOT EXISTS 'cancelled';

-- Reminders look for pending member invitations by age.
CREATE INDEX invitations_pending_created ON invitations (created_at) WHERE status = 'pending' AND kind = 'member';
