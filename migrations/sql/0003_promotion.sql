-- Regular users: login IDs and promotion.
ALTER TABLE users ADD COLUMN login_id_type text;
ALTER TABLE users ADD COLUMN login_id text;
ALTER TABLE users ADD COLUMN promoted_at timestamptz;
ALTER TABLE users ADD COLUMN merged_into uuid;
CREATE UNIQUE INDEX users_login_id ON users (login_id_type, login_id) WHERE login_id IS NOT NULL;

-- Attempt counters shared by every node (fixed windows).
CREATE TABLE rate_limits (
    key          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer     NOT NULL
);
