-- Ways a user signs in other than a session: anonymous device keys now,
-- login IDs later.
ALTER TABLE users ADD COLUMN has_anonymous_key boolean NOT NULL DEFAULT false;

CREATE TABLE identities (
    id           text        PRIMARY KEY,  -- type:value, e.g. anonymous_key:<kid>
    user_id      uuid        NOT NULL,
    type         text        NOT NULL,
    key_id       text,
    alg          text,
    thumbprint   text,
    created_at   timestamptz NOT NULL,
    -- Coalesced from session.started events: no event of its own per use.
    last_used_at timestamptz,
    version      bigint      NOT NULL
);
CREATE INDEX identities_user ON identities (user_id);
