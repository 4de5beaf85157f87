-- :name prune_sessions_batch :scalar
-- :doc Delete at most :batch_size of the tenant's sessions that ended before the (sealed)
-- cutoff, oldest first, in this statement's own transaction; returns how many.
SELECT prune_sessions_batch(:tenant_id, :cutoff, :batch_size)
