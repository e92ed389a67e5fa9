-- One history per person: every comment is attributed to the person its
-- author's activity belongs to (a merged guest's comments go to the account it
-- was merged into; a promoted guest keeps its sub), with what the author was
-- when it was written:
--   member  at or after promotion, after a merge (the guest became that
--           account), or a member who registered directly;
--   guest   before any of those;
--   unknown the sub is not (yet) in the links table: the consumer is behind.
-- Times compare the app's clock with idstream's: keep both in sync (NTP).
SELECT coalesce(l.person_id, c.author_sub) AS person_id,
       c.created_at,
       c.id AS comment_id,
       c.author_sub,
       CASE
           WHEN l.sub IS NULL THEN 'unknown'
           WHEN c.created_at >= coalesce(least(l.promoted_at, l.merged_at),
                                         CASE WHEN l.kind = 'member' THEN '-infinity'::timestamptz END)
               THEN 'member'
           ELSE 'guest'
       END AS author_was,
       c.body
FROM app_comments c
LEFT JOIN analytics_identity_links l ON l.sub = c.author_sub
ORDER BY person_id, c.created_at, c.id;
