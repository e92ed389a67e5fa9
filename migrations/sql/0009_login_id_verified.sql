-- When the user's current login ID was verified (login_id.verified.v1);
-- NULL while it is not (a changed login ID starts unverified).
ALTER TABLE users ADD COLUMN login_id_verified_at timestamptz;
