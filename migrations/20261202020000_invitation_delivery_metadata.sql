-- R38, R39: how an invitation reaches its invitee ('email', or 'none' when the
-- app delivers the link itself: no email, no reminder), and the app's own
-- data kept with it (a JSON object; its 4 KiB bound is the API's). Defaults,
-- so that every existing row and every insert that names neither column
-- (older code, the benchmark's SQL) is an emailed invitation without data.
ALTER TABLE invitations
    ADD COLUMN delivery_mode text NOT NULL DEFAULT 'email'
        CHECK (delivery_mode IN ('email', 'none')),
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(metadata) = 'object');
