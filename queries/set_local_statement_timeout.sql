-- :name set_local_statement_timeout :scalar
-- :doc Raise or lower statement_timeout until the current transaction ends (value in ms as
-- text; '0' means none): for the rare statement that may legitimately run longer than
-- M3W_DB_TIMEOUT_SECONDS, such as a rollup refresh catching up on a backlog.
SELECT set_config('statement_timeout', :milliseconds, true)
