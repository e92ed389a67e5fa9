-- Operators: disabled and deleted users, login ID search, user export jobs.
ALTER TABLE users ADD COLUMN disabled boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- Admin search by login ID prefix (login IDs are stored normalised).
CREATE INDEX users_login_id_prefix ON users (login_id text_pattern_ops) WHERE login_id IS NOT NULL;

-- User export jobs, run one at a time by the workers; the file lives in a
-- JetStream object store bucket for 24 hours.
CREATE TABLE export_jobs (
    id           uuid        PRIMARY KEY,
    format       text        NOT NULL CHECK (format IN ('ndjson', 'csv')),
    fields       text[]      NOT NULL,
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    total        bigint,
    done         bigint      NOT NULL DEFAULT 0,
    bytes        bigint,
    error        text,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX export_jobs_status ON export_jobs (status, created_at);
-- One export at a time: at most one job pending or running.
CREATE UNIQUE INDEX export_jobs_one_active ON export_jobs ((true)) WHERE status IN ('pending', 'running');
