-- idstream_rate_check takes its row in one statement: the insert of an empty
-- bucket, or the lock of the existing one, returning its tat. Before, an
-- insert that did nothing on conflict and a SELECT ... FOR UPDATE after it
-- left a moment in which a row deleted by the pruning of full buckets was
-- read as NULL: the request was admitted and nothing recorded.
CREATE OR REPLACE FUNCTION idstream_rate_check(k text, now_ts timestamptz, emission interval, burst integer,
                                               OUT allowed boolean, OUT retry_after interval)
LANGUAGE plpgsql AS $$
DECLARE
    old_tat timestamptz;
    new_tat timestamptz;
BEGIN
    INSERT INTO rate_buckets (key, tat) VALUES (k, now_ts)
        ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
        RETURNING tat INTO old_tat;
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
