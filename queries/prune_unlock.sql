-- :name prune_unlock :scalar
-- :doc Release the retention lock taken by prune_try_lock on this connection.
SELECT pg_advisory_unlock(hashtext('m3w_retention'))
