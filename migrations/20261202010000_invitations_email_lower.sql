-- R37: a user's invitations, in every business, are found by their address
-- (`lower(email) = $1`, as the member check compares users' addresses);
-- without this index each look-up read every invitation.
CREATE INDEX invitations_member_email_lower ON invitations (lower(email)) WHERE kind = 'member';
