-- :name create_api_key :one
-- :doc Register a new key by its SHA-256 (`m3w keys create`); the key itself is not stored.
-- expires_in_days NULL: the key never expires.
INSERT INTO api_keys (tenant_id, name, prefix, key_hash, expires_at)
VALUES (:tenant_id, :name, :prefix, :key_hash,
        now() + make_interval(days => CAST(:expires_in_days AS integer)))
RETURNING id, created_at, expires_at
