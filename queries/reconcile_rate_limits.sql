-- :name reconcile_rate_limits :many
-- :doc One worker's rate-limit reconcile (service/rate_limit.py), for every key it counted in
-- the current window at once, in the transaction that took their locks
-- (lock_rate_limit_keys.sql), so it sees every grant made before it. :counts is a JSON
-- array of {"key_id", "window_start" (epoch seconds), "admitted" (by this worker in the
-- window), "lim" (the key's limit), "wants" (a share: the worker is using the key)}. For
-- each key it reads what the other workers admitted and claimed (admitted + unused share),
-- grants this worker :share_of_remaining of what nobody claimed, divided by the workers
-- counting the key (rounded up), and stores the worker's numbers: the next worker's
-- statement sees the grant as claimed. Rows of windows before :expired_before (epoch
-- seconds) are deleted too, a bounded batch per call, skipping any another worker is
-- deleting at the same moment.
WITH mine AS (
    SELECT m.key_id, to_timestamp(m.window_start) AS window_start, m.admitted, m.lim, m.wants
    FROM jsonb_to_recordset(CAST(:counts AS jsonb))
        AS m (key_id integer, window_start bigint, admitted integer, lim integer, wants boolean)
), seen AS (
    SELECT m.key_id, m.window_start, m.admitted, m.lim, m.wants,
           coalesce(sum(o.admitted), 0)::bigint AS others_admitted,
           coalesce(sum(o.claimed), 0)::bigint AS others_claimed,
           count(o.worker) AS others
    FROM mine AS m
    LEFT JOIN rate_limit_counts AS o
        ON o.key_id = m.key_id AND o.window_start = m.window_start
       AND o.worker <> CAST(:worker AS uuid)
    GROUP BY m.key_id, m.window_start, m.admitted, m.lim, m.wants
), granted AS (
    SELECT s.*,
           CASE WHEN s.wants AND s.lim > s.others_claimed + s.admitted
                THEN ceil(CAST(:share_of_remaining AS double precision)
                          * (s.lim - s.others_claimed - s.admitted) / (s.others + 1))::integer
                ELSE 0 END AS share
    FROM seen AS s
), stored AS (
    INSERT INTO rate_limit_counts AS c
        (key_id, window_start, worker, admitted, claimed, updated_at)
    SELECT key_id, window_start, CAST(:worker AS uuid), admitted, admitted + share, now()
    FROM granted
    ON CONFLICT (key_id, window_start, worker) DO UPDATE
        SET admitted = greatest(c.admitted, excluded.admitted),
            claimed = excluded.claimed,
            updated_at = excluded.updated_at
), expired AS (
    DELETE FROM rate_limit_counts
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM rate_limit_counts
        WHERE window_start < to_timestamp(CAST(:expired_before AS bigint))
        LIMIT 1000
        FOR UPDATE SKIP LOCKED))
)
SELECT key_id, others_admitted, others_claimed, others + 1 AS workers, share
FROM granted
