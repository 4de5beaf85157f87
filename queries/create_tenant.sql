-- :name create_tenant :one
-- :doc A new tenant (`m3w tenants create`); a taken slug violates tenants_slug_key.
INSERT INTO tenants (slug, name) VALUES (:slug, :name)
RETURNING id, slug, name, created_at
