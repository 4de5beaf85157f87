-- :name api_key_tenant :one
-- :doc The tenant of a usable API key, by the SHA-256 of the key (one unique-index probe):
-- no row when the key is unknown, revoked or expired. seconds_left (NULL: never expires)
-- lets the per-worker cache drop the key no later than it expires (service/keys.py);
-- rate_limit is the key's own (NULL: RATE_LIMIT_REQUESTS; 0: unlimited).
SELECT k.id AS key_id, t.id AS tenant_id, t.slug, k.rate_limit,
       extract(epoch FROM k.expires_at - now())::double precision AS seconds_left
FROM api_keys AS k
JOIN tenants AS t ON t.id = k.tenant_id
WHERE k.key_hash = :key_hash
  AND k.revoked_at IS NULL
  AND (k.expires_at IS NULL OR k.expires_at > now())
