-- :name prune_seal_hours :scalar
-- :doc Refresh every dirty hour and mark the tenant's hours before the cutoff pruned, so
-- deleting their sessions keeps their rollups (db/migrations/*_add_retention.sql); returns
-- the hours refreshed.
SELECT qoe_seal_pruned_hours(:tenant_id, :cutoff)
