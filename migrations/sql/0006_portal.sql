-- Portal: operators' sessions, separate from end users' sessions. Only a
-- hash of the session token is stored; the CSRF token is bound to the
-- session.
CREATE TABLE portal_sessions (
    token_hash  bytea       PRIMARY KEY,
    operator    text        NOT NULL,
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

-- The operations page counts recent expiries.
CREATE INDEX users_expired_at ON users (expired_at) WHERE expired_at IS NOT NULL;
