-- :name prune_statement_timeout :scalar
-- :doc statement_timeout for the rest of this connection's session (ms, as text): a prune
-- pass first refreshes the dirty hours, which may take far longer than a commit.
SELECT set_config('statement_timeout', :milliseconds, false)
