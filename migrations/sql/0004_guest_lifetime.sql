-- Guest lifetime: expiry in the read model, the reaper's bookkeeping, and
-- shared rate-limit buckets.
ALTER TABLE users ADD COLUMN expired_at timestamptz;
ALTER TABLE users ADD COLUMN expiry_reason text;

-- The reaper's scans, both on live guests only.
CREATE INDEX users_key_guest_sign_in ON users ((coalesce(last_sign_in_at, created_at)))
    WHERE is_anonymous AND state = 'active' AND has_anonymous_key;
DROP INDEX users_guest_activity;
CREATE INDEX users_web_guest_activity ON users (last_seen_at)
    WHERE is_anonymous AND state = 'active' AND NOT has_anonymous_key;

-- Owned by the reaper (not a projection): a guest found still active is not
-- looked at again before not_before (e.g. a cookie session whose activity is
-- recorded outside the log).
CREATE TABLE reaper_checks (
    user_id    uuid        PRIMARY KEY,
    not_before timestamptz NOT NULL
);
CREATE INDEX reaper_checks_not_before ON reaper_checks (not_before);

-- Token buckets (GCRA): tat is the theoretical arrival time of the next
-- request. One row per key, one statement per check.
CREATE TABLE rate_buckets (
    key text        PRIMARY KEY,
    tat timestamptz NOT NULL
);
CREATE INDEX rate_buckets_tat ON rate_buckets (tat);

-- idstream_rate_check records one request under key if the bucket allows it
-- (rate: one request per emission interval, up to burst at once) and returns
-- whether it did and, if not, how long until it would.
CREATE FUNCTION idstream_rate_check(k text, now_ts timestamptz, emission interval, burst integer,
                                    OUT allowed boolean, OUT retry_after interval)
LANGUAGE plpgsql AS $$
DECLARE
    old_tat timestamptz;
    new_tat timestamptz;
BEGIN
    INSERT INTO rate_buckets (key, tat) VALUES (k, now_ts) ON CONFLICT (key) DO NOTHING;
    SELECT tat INTO old_tat FROM rate_buckets WHERE key = k FOR UPDATE;
    new_tat := greatest(old_tat, now_ts) + emission;
    IF new_tat - now_ts <= emission * burst THEN
        UPDATE rate_buckets SET tat = new_tat WHERE key = k;
        allowed := true;
        retry_after := interval '0';
    ELSE
        allowed := false;
        retry_after := new_tat - now_ts - emission * burst;
    END IF;
END;
$$;

DROP TABLE rate_limits;
