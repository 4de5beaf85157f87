-- :name list_api_keys :many
-- :doc Every key, or one tenant's (tenant NULL: all), with its state now (`m3w keys list`).
SELECT k.id, t.slug AS tenant, k.name, k.prefix, k.created_at, k.last_used_at, k.expires_at,
       k.revoked_at,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.expires_at <= now() THEN 'expired'
            ELSE 'active' END AS state
FROM api_keys AS k
JOIN tenants AS t ON t.id = k.tenant_id
WHERE CAST(:tenant AS text) IS NULL OR t.slug = CAST(:tenant AS text)
ORDER BY k.id
