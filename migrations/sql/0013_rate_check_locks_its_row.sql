-- idstream_rate_check takes its row in one statement: an upsert that
-- inserts an empty bucket with this request in it, or records the request
-- in the existing bucket if it admits it; a refused request leaves the row
-- as it was (no new row version), locked all the same until the end of the
-- call. Before, an insert that did nothing on conflict and a
-- SELECT ... FOR UPDATE after it left a moment in which a row deleted by
-- the pruning of full buckets was read as NULL: the request was admitted
-- and nothing recorded.
CREATE OR REPLACE FUNCTION idstream_rate_check(k text, now_ts timestamptz, emission interval, burst integer,
                                               OUT allowed boolean, OUT retry_after interval)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz;
BEGIN
    INSERT INTO rate_buckets AS b (key, tat) VALUES (k, now_ts + emission)
        ON CONFLICT (key) DO UPDATE SET tat = greatest(b.tat, now_ts) + emission
        WHERE greatest(b.tat, now_ts) + emission - now_ts <= emission * burst
        RETURNING b.tat INTO t;
    IF FOUND THEN
        allowed := true;
        retry_after := interval '0';
        RETURN;
    END IF;
    SELECT b.tat INTO t FROM rate_buckets AS b WHERE b.key = k;
    allowed := false;
    retry_after := greatest(t, now_ts) + emission - now_ts - emission * burst;
END;
$$;
