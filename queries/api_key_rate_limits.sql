-- :name api_key_rate_limits :many
-- :doc Every key's own rate limit (NULL: RATE_LIMIT_REQUESTS; 0: unlimited), by id, for
-- `m3w keys list`.
SELECT id, rate_limit FROM api_keys ORDER BY id
