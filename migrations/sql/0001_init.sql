-- Read models built by projections from the event log, projection
-- bookkeeping, and the token signing keys.

CREATE TABLE users (
    id             uuid        PRIMARY KEY,
    is_anonymous   boolean     NOT NULL,
    client_id      text        NOT NULL,
    state          text        NOT NULL DEFAULT 'active',
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    last_sign_in_at timestamptz,
    version        bigint      NOT NULL
);
-- The reaper's scan: idle guests, oldest activity first.
CREATE INDEX users_guest_activity ON users (last_seen_at) WHERE is_anonymous AND state = 'active';
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE sessions (
    id                   uuid        PRIMARY KEY,
    user_id              uuid        NOT NULL,
    client_id            text        NOT NULL,
    kind                 text        NOT NULL,
    method               text        NOT NULL,
    started_at           timestamptz NOT NULL,
    last_active_at       timestamptz NOT NULL,
    last_refreshed_at    timestamptz,
    refresh_count        integer     NOT NULL DEFAULT 0,
    idle_timeout_seconds bigint      NOT NULL,
    expires_at           timestamptz NOT NULL,
    revoked_at           timestamptz,
    revoke_reason        text,
    version              bigint      NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- One row: this database's identity. Durable consumers are named after it,
-- so two deployments (or a rebuild into another database) sharing one NATS
-- never share a consumer.
CREATE TABLE installation (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    singleton  boolean     NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
INSERT INTO installation DEFAULT VALUES;

-- One row per projection: the stream sequence applied last, moved in the same
-- transaction as the projection's rows.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0,
    state      text        NOT NULL DEFAULT 'running',
    last_event_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events a projection could not apply. The projection stops at the first one
-- and stays stopped until it is restarted (after a fix).
CREATE TABLE projection_failures (
    id          bigserial   PRIMARY KEY,
    projection  text        NOT NULL,
    sequence    bigint      NOT NULL,
    subject     text        NOT NULL,
    event_type  text        NOT NULL,
    event_id    text        NOT NULL,
    error       text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projection_failures_projection ON projection_failures (projection, failed_at DESC);

-- Access-token signing keys, shared by every node. A retired key stays
-- published in JWKS until the tokens it signed have expired.
CREATE TABLE signing_keys (
    kid          text        PRIMARY KEY,
    alg          text        NOT NULL,
    private_jwk  jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz
);
