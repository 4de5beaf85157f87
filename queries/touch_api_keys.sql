-- :name touch_api_keys :affected
-- :doc Record that these keys were used (ids as a JSON array of numbers). A key written in
-- the last minute is skipped, so every worker and instance flushing its own list still
-- writes each key at most once a minute.
UPDATE api_keys
SET last_used_at = now()
WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))::integer)
  AND (last_used_at IS NULL OR last_used_at <= now() - interval '1 minute')
