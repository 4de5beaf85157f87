-- :name ping :scalar
-- :doc Readiness probe: answers 1 when PostgreSQL accepts queries.
SELECT 1
