-- :name prune_try_lock :scalar
-- :doc Take the retention lock for this connection (session level, key
-- hashtext('m3w_retention')), or answer false at once when another process holds it: one
-- prune at a time across every worker and instance (service/retention.py).
SELECT pg_try_advisory_lock(hashtext('m3w_retention'))
