-- :name prune_tenants :many
-- :doc Every tenant with its own retention (NULL: RETENTION_DAYS; 0: forever), by slug.
SELECT id, slug, retention_days FROM tenants ORDER BY slug
