-- As the Postgres migration of the same name: the reminders' index covers
-- only what the reminder query reads (pending member invitations delivered
-- by email, R38), so no other query is planned through it.
DROP INDEX invitations_pending_created;
CREATE INDEX invitations_pending_created ON invitations (created_at)
    WHERE status = 'pending' AND kind = 'member' AND delivery_mode = 'email';
