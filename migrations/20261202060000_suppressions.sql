-- R45: the suppression list. One list for the whole daemon: an address that
-- bounced hard for one business bounces for all. An address is kept in lower
-- case (as `Email` parses it), so the primary key compares addresses
-- case-insensitively, like `lower(users.email)`.
CREATE TABLE suppressions (
    email      text PRIMARY KEY CHECK (email = lower(email)),
    reason     text NOT NULL CHECK (reason IN ('hard_bounce', 'complaint', 'manual')),
    -- Who put it there: the feedback's source (`smtp`, a provider) or `api`.
    source     text NOT NULL,
    -- The bounce's status and diagnostic, the complaint's feedback type, or
    -- what an operator wrote.
    detail     text,
    created_at timestamptz NOT NULL
);
