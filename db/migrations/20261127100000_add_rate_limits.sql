-- migrate:up
-- Per-API-key rate limits that hold across every worker of every instance (README "Rate
-- limits"; how the workers use these in service/rate_limit.py).
--
--   api_keys.rate_limit  the key's own requests per window: NULL follows RATE_LIMIT_REQUESTS,
--                        0 is unlimited (`m3w keys create/update --rate-limit N`)
--   rate_limit_counts    per key, window and worker: what the worker admitted, and what it
--                        may still admit without asking (its share), as it last told
--                        PostgreSQL (about once a second, never per request). The sums over
--                        workers are the key's count, and its budget spoken for, across the
--                        whole deployment.

ALTER TABLE api_keys ADD COLUMN rate_limit integer CHECK (rate_limit >= 0);

-- One row per key, window and worker. A worker writes only its own rows, with absolute
-- numbers (a repeated statement changes nothing), so workers never wait for each other on a
-- row. key_id 0 stands for M3W_API_KEY and dev-key (tenant `default`, no api_keys row):
-- no foreign key, and rows of a past window are deleted by the workers' own statement.
CREATE TABLE rate_limit_counts (
    key_id       integer NOT NULL CHECK (key_id >= 0),
    window_start timestamptz NOT NULL,
    worker       uuid NOT NULL,
    admitted     integer NOT NULL CHECK (admitted >= 0),
    claimed      integer NOT NULL CHECK (claimed >= 0),  -- admitted + its unused share
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, window_start, worker)
);
-- The cleanup of past windows.
CREATE INDEX rate_limit_counts_window_start_idx ON rate_limit_counts (window_start);

-- The service reads every worker's counts, writes its own and deletes past windows; the key's
-- limit it reads with the key (SELECT on api_keys is granted already).
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_counts TO m3w_ingest;

-- migrate:down
REVOKE ALL ON rate_limit_counts FROM m3w_ingest;
DROP TABLE rate_limit_counts;
ALTER TABLE api_keys DROP COLUMN rate_limit;
