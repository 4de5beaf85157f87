-- :name refresh_qoe_rollups :scalar
-- :doc Recompute the dashboard rollups of the hours written since the last refresh
-- (db/migrations/*_add_qoe_rollups.sql, *_exact_qoe_dashboards.sql); returns how many hours
-- it recomputed, 0 when another refresh holds the lock. Dashboards are exact without it
-- (they correct those hours on the fly); it keeps them fast.
SELECT refresh_qoe_rollups()
