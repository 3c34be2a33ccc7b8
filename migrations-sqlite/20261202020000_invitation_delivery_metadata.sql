-- The same columns as the Postgres migration of this name (R38, R39); the
-- metadata is JSON text.
ALTER TABLE invitations ADD COLUMN delivery_mode TEXT NOT NULL DEFAULT 'email'
    CHECK (delivery_mode IN ('email', 'none'));
ALTER TABLE invitations ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'
    CHECK (json_type(metadata) = 'object');
