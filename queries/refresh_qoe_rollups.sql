-- :name refresh_qoe_rollups :scalar
-- :doc Recompute the dashboard rollups of the hours written since the last refresh
-- (db/migrations/*_add_qoe_rollups.sql); returns how many hours it recomputed, 0 when
-- another refresh holds the lock.
SELECT refresh_qoe_rollups()
