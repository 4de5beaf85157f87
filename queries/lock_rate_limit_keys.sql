-- :name lock_rate_limit_keys :many
-- :doc Before a rate-limit reconcile (in its transaction): one worker at a time per key, so
-- that each grant sees every share granted before it. :keys is a JSON array of key ids. The
-- locks are taken in key order (a volatile function in the output is evaluated after the
-- sort), so two workers reconciling the same keys never deadlock; they go with the
-- transaction. The two-number key space of advisory locks is not the one-number space that
-- the retention lock uses.
SELECT pg_advisory_xact_lock(hashtext('m3w_rate_limit'), k.id) IS NULL AS locked
FROM (SELECT CAST(value AS integer) AS id
      FROM jsonb_array_elements_text(CAST(:keys AS jsonb))) AS k
ORDER BY k.id
