-- Webhook endpoints (issue 21). Not a projection: the endpoints are
-- operator configuration, and the signing secrets must never reach the
-- event log, so they live here (and in database backups) only. The
-- delivery position is the endpoint's durable JetStream consumer; the
-- counters below are written by the node that holds the webhook lease.
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    event_types text[] NOT NULL,
    client_ids text[] NOT NULL DEFAULT '{}',
    state text NOT NULL CHECK (state IN ('enabled', 'paused', 'disabled')),
    state_reason text NOT NULL DEFAULT '',
    -- now, beginning, or an RFC 3339 time; created_seq is the log's last
    -- sequence when the endpoint was made (events up to it are backfill).
    start_from text NOT NULL,
    created_seq bigint NOT NULL,
    source text NOT NULL CHECK (source IN ('api', 'config')),
    secret text NOT NULL,
    previous_secret text,
    previous_until timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    delivered bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    dead_lettered bigint NOT NULL DEFAULT 0,
    circuit text NOT NULL DEFAULT 'closed',
    last_errors jsonb NOT NULL DEFAULT '[]',
    last_delivered_at timestamptz,
    last_delivered_seq bigint NOT NULL DEFAULT 0
);
