-- :name revoke_api_key :one
-- :doc Revoke a key (`m3w keys revoke`); a key revoked already keeps its first revoked_at.
-- No row: there is no such key.
UPDATE api_keys AS k
SET revoked_at = coalesce(k.revoked_at, now())
FROM tenants AS t
WHERE k.id = :id AND t.id = k.tenant_id
RETURNING k.id, t.slug AS tenant, k.prefix, k.revoked_at,
          k.revoked_at = now() AS revoked_now
