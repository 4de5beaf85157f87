-- :name tenant_by_slug :one
-- :doc One tenant by its slug (M3W_API_KEY and dev-key are the tenant `default`'s).
SELECT id, slug, name, created_at FROM tenants WHERE slug = :slug
