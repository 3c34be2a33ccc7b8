-- The same as the Postgres migration of this name: `events.business_id`
-- may be NULL (R49's operator events, which belong to no business).
--
-- SQLite cannot drop a NOT NULL, so the table is rebuilt: the same columns
-- in the same order (with `join_request_id`, added by `join_requests`), the
-- rows copied with their `seq` (the commit order the sinks' cursors point
-- into) and the AUTOINCREMENT counter kept, then its indexes and the
-- append-only triggers made again. No table references `events`, so
-- dropping the old one breaks no foreign key (and DROP TABLE fires no
-- DELETE trigger).
CREATE TABLE events_rebuilt (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    business_id     TEXT REFERENCES businesses (id),
    invitation_id   TEXT REFERENCES invitations (id),
    type            TEXT NOT NULL,
    actor_user_id   TEXT,
    from_status     TEXT CHECK (from_status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')),
    to_status       TEXT CHECK (to_status IN ('pending', 'accepted', 'declined', 'cancelled', 'expired')),
    data            TEXT NOT NULL DEFAULT '{}',
    occurred_at     TEXT NOT NULL,
    join_request_id TEXT REFERENCES join_requests (id)
);

INSERT INTO events_rebuilt (seq, id, business_id, invitation_id, type, actor_user_id, from_status,
                            to_status, data, occurred_at, join_request_id)
SELECT seq, id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data,
       occurred_at, join_request_id
  FROM events ORDER BY seq;

-- The counter, not just the highest row: a `seq` handed out and rolled back
-- is never handed out again.
UPDATE sqlite_sequence
   SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
 WHERE name = 'events_rebuilt';

DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;

CREATE INDEX events_invitation ON events (invitation_id, id) WHERE invitation_id IS NOT NULL;
CREATE INDEX events_business ON events (business_id, id);
CREATE INDEX events_join_request ON events (join_request_id, id) WHERE join_request_id IS NOT NULL;
CREATE INDEX events_operator ON events (occurred_at) WHERE business_id IS NULL;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
