-- :name prune_rollups_batch :scalar
-- :doc Delete at most :batch_size rollup rows of the UTC days before :cutoff (a midnight),
-- in this statement's own transaction; returns how many.
SELECT prune_qoe_rollups_batch(:cutoff, :batch_size)
