-- The demo app's own activity: comments, written by whoever is signed in
-- (author_sub is the token's sub, a guest's or a member's).
CREATE TABLE IF NOT EXISTS app_comments (
    id         bigserial PRIMARY KEY,
    author_sub text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_comments_author ON app_comments (author_sub);
