-- :name set_api_key_rate_limit :one
-- :doc Set a key's own requests per window (`m3w keys create/update --rate-limit`):
-- NULL follows RATE_LIMIT_REQUESTS, 0 is unlimited. No row: there is no such key.
UPDATE api_keys AS k
SET rate_limit = CAST(:rate_limit AS integer)
FROM tenants AS t
WHERE k.id = :id AND t.id = k.tenant_id
RETURNING k.id, t.slug AS tenant, k.prefix, k.rate_limit
