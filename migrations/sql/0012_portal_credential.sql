-- A portal session is bound to the operator's credential when it began: a
-- fingerprint of the operator's argon2id hash (never of the password). An
-- operator removed from the configuration, or given another password, has
-- no session left; sessions from before this column have none and end.
ALTER TABLE portal_sessions ADD COLUMN credential bytea;
