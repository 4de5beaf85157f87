-- :name list_tenants :many
-- :doc Every tenant with how many of its keys are usable now and its own retention (NULL:
-- RETENTION_DAYS) (`m3w tenants list`).
SELECT t.id, t.slug, t.name, t.created_at, t.retention_days,
       count(k.id) FILTER (WHERE k.revoked_at IS NULL
                             AND (k.expires_at IS NULL OR k.expires_at > now())) AS active_keys
FROM tenants AS t
LEFT JOIN api_keys AS k ON k.tenant_id = t.id
GROUP BY t.id
ORDER BY t.slug
