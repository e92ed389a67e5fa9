-- The guest funnel (issue 21): one row per guest, by the day and client it
-- was created, with what became of it. A projection (rebuilt by replay);
-- the daily counts are read from it by GET /admin/analytics/funnel.
CREATE TABLE funnel_guests (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    -- web, or key_pair once a device key was registered to the guest
    method text NOT NULL,
    created_at timestamptz NOT NULL,
    -- anonymous, promoted, merged, expired or deleted
    state text NOT NULL,
    login_id_type text,
    -- when it was promoted, merged, expired or deleted
    ended_at timestamptz,
    version bigint NOT NULL
);
CREATE INDEX funnel_guests_created ON funnel_guests (created_at, client_id);
