-- :name prune_count_rollups :scalar
-- :doc How many rollup rows ROLLUP_RETENTION_DAYS would delete (`m3w prune --dry-run`).
SELECT (SELECT count(*) FROM qoe_hourly_rollup WHERE hour < :cutoff)
     + (SELECT count(*) FROM qoe_hourly_breakdown_rollup WHERE hour < :cutoff)
     + (SELECT count(*) FROM qoe_daily_breakdown_rollup WHERE day < :cutoff)
