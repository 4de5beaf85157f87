-- :name set_tenant_retention :one
-- :doc A tenant's own retention in days (`m3w tenants create/update --retention-days`):
-- NULL uses RETENTION_DAYS, 0 keeps its sessions forever.
UPDATE tenants SET retention_days = :retention_days WHERE slug = :slug
RETURNING id, slug, retention_days
