-- Tables of the analytics identity-links consumer. They live next to the
-- app's own tables (prefix analytics_) and are written by nothing else.

-- The link events: one row per applied event of the five link types, keyed by
-- stream sequence. No login IDs: only their type. The links table below is a
-- fold of these rows in sequence order, so a replay from sequence S deletes
-- the rows from S on and folds the rest again.
CREATE TABLE IF NOT EXISTS analytics_identity_events (
    seq           bigint PRIMARY KEY,
    event_id      text NOT NULL,
    type          text NOT NULL,
    sub           text NOT NULL,
    at            timestamptz NOT NULL,
    into_sub      text,
    login_id_type text
);

-- One row per sub. person_id is the sub the activity of this sub belongs to:
-- itself, or for a merged guest the account it was merged into (followed to
-- the end of the chain). kind is what the sub is now; created_at,
-- promoted_at and merged_at say what it was at any earlier time.
CREATE TABLE IF NOT EXISTS analytics_identity_links (
    sub           text PRIMARY KEY,
    person_id     text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('guest', 'member')),
    created_at    timestamptz,
    promoted_at   timestamptz,
    login_id_type text,
    merged_into   text,
    merged_at     timestamptz,
    expired_at    timestamptz,
    last_seq      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_identity_links_person ON analytics_identity_links (person_id);

-- The consumer's position: the last stream sequence it applied, moved in the
-- same transaction as the rows.
CREATE TABLE IF NOT EXISTS analytics_checkpoints (
    consumer   text PRIMARY KEY,
    last_seq   bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
