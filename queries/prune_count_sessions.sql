-- :name prune_count_sessions :scalar
-- :doc How many of a tenant's sessions ended before the cutoff (`m3w prune --dry-run`).
SELECT count(*) FROM sessions WHERE tenant_id = :tenant_id AND ended_at < :cutoff
