-- migrate:up
-- Retention of raw sessions that keeps the dashboard rollups (issue 8, part 2; README
-- "Retention"; service/retention.py runs it, `m3w prune` by hand).
--
-- Sessions whose ended_at is older than their tenant's cutoff are deleted, a few thousand
-- rows per transaction; the rollups of the hours they belonged to are kept. The cutoff is
-- always a whole UTC hour, so a pruned hour is pruned whole and its rollup rows hold all of
-- it. Two things would otherwise empty such an hour later:
--   * the delete trigger marks the hours it deletes from dirty, and refresh_qoe_rollups()
--     would recompute them from the sessions left (none);
--   * a later write to the same hour (another tenant's, which dirty hours do not tell apart,
--     or a late summary) would do the same at the next refresh.
-- So each tenant has a watermark, qoe_pruned_before: its hours before it are "pruned", their
-- rollup rows final. Before the watermark moves, every dirty hour is refreshed (under the
-- refresh's own lock), so the rollups hold what `sessions` held; after it:
--   * the triggers do not mark an hour dirty for rows of a tenant before its watermark (the
--     prune's deletes, and sessions that arrive for an hour already pruned: those are past
--     retention, are not counted, and go at the next pass);
--   * refresh_qoe_rollups() leaves the rows of a tenant's pruned hours as they are and
--     recomputes only the other tenants' rows of a dirty hour.

-- Per-tenant override of RETENTION_DAYS: NULL uses the setting, 0 keeps forever.
ALTER TABLE tenants ADD COLUMN retention_days integer
    CHECK (retention_days BETWEEN 0 AND 36500);

CREATE TABLE qoe_pruned_before (
    tenant_id     integer PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- whole UTC hour: the tenant's hours before it are pruned; only moves forward
    pruned_before timestamptz NOT NULL
        CHECK (pruned_before = date_trunc('hour', pruned_before, 'UTC'))
);

-- The prune reads one tenant's oldest sessions: neither the primary key (tenant_id,
-- session_id) nor the ended_at index serves `tenant_id = $1 AND ended_at < $2` without
-- walking other tenants' rows (or every session id of the tenant) at every batch.
CREATE INDEX sessions_tenant_id_ended_at_idx ON sessions (tenant_id, ended_at);

CREATE OR REPLACE FUNCTION mark_qoe_rollups_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT DISTINCT date_trunc('hour', r.ended_at, 'UTC') FROM new_rows AS r
        WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                          WHERE p.tenant_id = r.tenant_id AND r.ended_at < p.pruned_before);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT date_trunc('hour', r.ended_at, 'UTC') FROM old_rows AS r
        WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                          WHERE p.tenant_id = r.tenant_id AND r.ended_at < p.pruned_before)
        UNION
        SELECT date_trunc('hour', r.ended_at, 'UTC') FROM new_rows AS r
        WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                          WHERE p.tenant_id = r.tenant_id AND r.ended_at < p.pruned_before);
    ELSE
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT DISTINCT date_trunc('hour', r.ended_at, 'UTC') FROM old_rows AS r
        WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                          WHERE p.tenant_id = r.tenant_id AND r.ended_at < p.pruned_before);
    END IF;
    RETURN NULL;
END
$$;

-- As in 20261126120000_add_tenant_to_rollups.sql, but a tenant's pruned hours keep their
-- rows: the sessions they were made from are gone. (Their hourly breakdown rows are taken
-- out of their days and added back like every row of a dirty hour: no change.)
CREATE OR REPLACE FUNCTION refresh_qoe_rollups() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
    breakdown text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('refresh_qoe_rollups')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (DELETE FROM qoe_rollup_dirty_hours RETURNING hour)
    SELECT array_agg(DISTINCT hour) INTO hours FROM taken;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM qoe_hourly_rollup AS r
    WHERE r.hour = ANY (hours)
      AND NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                      WHERE p.tenant_id = r.tenant_id AND r.hour < p.pruned_before);
    INSERT INTO qoe_hourly_rollup
    SELECT * FROM qoe_hourly_aggregate(hours) AS a
    WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                      WHERE p.tenant_id = a.tenant_id AND a.hour < p.pruned_before);

    PERFORM qoe_add_hours_to_days(hours, -1);
    DELETE FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
      AND NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                      WHERE p.tenant_id = r.tenant_id AND r.hour < p.pruned_before);
    FOREACH breakdown IN ARRAY ARRAY['app_version', 'device_model', 'device_os_version',
                                     'content_id'] LOOP
        INSERT INTO qoe_hourly_breakdown_rollup
        SELECT * FROM qoe_hourly_breakdown_aggregate(hours, breakdown) AS a
        WHERE NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                          WHERE p.tenant_id = a.tenant_id AND a.hour < p.pruned_before);
    END LOOP;
    -- The same per value across the four filter dimensions, as '<breakdown> total' rows
    -- (the app kept for app versions): what a breakdown with every filter on "All" reads,
    -- several times fewer rows (qoe_breakdown_rows()). A pruned hour has its own already.
    INSERT INTO qoe_hourly_breakdown_rollup
    SELECT r.hour, r.dimension || ' total', r.value,
           CASE WHEN r.dimension = 'app_version' THEN r.app_name ELSE 'all' END,
           'all', 'all', 'all', sum(r.sessions), sum(r.failed_sessions),
           sum(r.started_sessions), sum(r.rebuffer_ms_sum), sum(r.watch_ms_sum),
           sum(r.startup_histogram), r.tenant_id
    FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
      AND r.dimension NOT LIKE '% total'
      AND NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                      WHERE p.tenant_id = r.tenant_id AND r.hour < p.pruned_before)
    GROUP BY 1, 2, 3, 4, r.tenant_id;
    PERFORM qoe_add_hours_to_days(hours, 1);
    RETURN cardinality(hours);
END
$$;

-- TRUNCATE sessions empties the rollups: no pruned hour is left either.
CREATE OR REPLACE FUNCTION clear_qoe_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup,
             qoe_rollup_dirty_hours, qoe_pruned_before;
    RETURN NULL;
END
$$;

-- Step 1 of pruning a tenant up to `cutoff` (a whole UTC hour): bring every dirty hour into
-- the rollups from `sessions`, then move the tenant's watermark to `cutoff`, in one
-- transaction. It waits for a refresh running elsewhere (its hours must be in the rollups
-- before they are final) and holds the refresh's lock until it commits, so no refresh
-- recomputes an hour between the two. Returns the hours refreshed (0: nothing was dirty, or
-- the tenant was pruned up to `cutoff` already).
CREATE FUNCTION qoe_seal_pruned_hours(tenant integer, cutoff timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    refreshed integer;
BEGIN
    IF cutoff IS DISTINCT FROM date_trunc('hour', cutoff, 'UTC') THEN
        RAISE EXCEPTION 'the prune cutoff % is not a whole UTC hour', cutoff;
    END IF;
    IF EXISTS (SELECT FROM qoe_pruned_before AS p
               WHERE p.tenant_id = tenant AND p.pruned_before >= cutoff) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('refresh_qoe_rollups'));
    refreshed := refresh_qoe_rollups();  -- the same session holds the lock: it runs
    INSERT INTO qoe_pruned_before (tenant_id, pruned_before) VALUES (tenant, cutoff)
    ON CONFLICT (tenant_id) DO UPDATE
    SET pruned_before = greatest(qoe_pruned_before.pruned_before, EXCLUDED.pruned_before);
    RETURN refreshed;
END
$$;

-- Step 2, repeated until it returns less than batch_size: delete at most batch_size of the
-- tenant's sessions that ended before `cutoff`, oldest first (an index range scan on
-- sessions_tenant_id_ended_at_idx; one short transaction, row locks only). Refused for hours
-- not sealed by step 1: their deletes would dirty the hours and the next refresh would
-- empty them.
CREATE FUNCTION prune_sessions_batch(tenant integer, cutoff timestamptz, batch_size integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    deleted integer;
BEGIN
    IF NOT EXISTS (SELECT FROM qoe_pruned_before AS p
                   WHERE p.tenant_id = tenant AND p.pruned_before >= cutoff) THEN
        RAISE EXCEPTION 'the hours of tenant % before % are not sealed '
            '(qoe_seal_pruned_hours first)', tenant, cutoff;
    END IF;
    DELETE FROM sessions AS s
    WHERE s.tenant_id = tenant
      AND s.ended_at < cutoff
      AND s.session_id IN (SELECT o.session_id FROM sessions AS o
                           WHERE o.tenant_id = tenant AND o.ended_at < cutoff
                           ORDER BY o.ended_at
                           LIMIT batch_size);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

-- ROLLUP_RETENTION_DAYS: delete at most batch_size rollup rows of the UTC days before
-- `cutoff` (a UTC midnight), hourly rows first, then the days they add up to; repeated until
-- it returns less than batch_size. Under the refresh's lock, so a refresh never adds an hour
-- back to a day deleted under it.
CREATE FUNCTION prune_qoe_rollups_batch(cutoff timestamptz, batch_size integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    deleted integer;
    more integer;
BEGIN
    IF cutoff IS DISTINCT FROM date_trunc('day', cutoff, 'UTC') THEN
        RAISE EXCEPTION 'the rollup cutoff % is not a UTC midnight', cutoff;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('refresh_qoe_rollups'));
    DELETE FROM qoe_hourly_rollup
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM qoe_hourly_rollup
                            WHERE hour < cutoff LIMIT batch_size));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    IF deleted < batch_size THEN
        DELETE FROM qoe_hourly_breakdown_rollup
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM qoe_hourly_breakdown_rollup
                                WHERE hour < cutoff LIMIT batch_size - deleted));
        GET DIAGNOSTICS more = ROW_COUNT;
        deleted := deleted + more;
    END IF;
    IF deleted < batch_size THEN
        DELETE FROM qoe_daily_breakdown_rollup
        WHERE ctid = ANY (ARRAY(SELECT ctid FROM qoe_daily_breakdown_rollup
                                WHERE day < cutoff LIMIT batch_size - deleted));
        GET DIAGNOSTICS more = ROW_COUNT;
        deleted := deleted + more;
    END IF;
    RETURN deleted;
END
$$;

-- The service prunes as m3w_ingest, which may not DELETE FROM sessions nor move a watermark
-- itself: the two functions that do run as their owner (SECURITY DEFINER, fixed
-- search_path) and delete only sessions of hours sealed first, never a recent one by
-- mistake. It already deletes rollup rows (the refresh does). Its triggers and the refresh
-- read the watermarks. Grafana's role needs none of it.
REVOKE ALL ON FUNCTION qoe_seal_pruned_hours(integer, timestamptz),
    prune_sessions_batch(integer, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION qoe_seal_pruned_hours(integer, timestamptz),
    prune_sessions_batch(integer, timestamptz, integer) TO m3w_ingest;
GRANT SELECT ON qoe_pruned_before TO m3w_ingest;

-- migrate:down
REVOKE ALL ON qoe_pruned_before FROM m3w_ingest;
DROP FUNCTION prune_qoe_rollups_batch(timestamptz, integer);
DROP FUNCTION prune_sessions_batch(integer, timestamptz, integer);
DROP FUNCTION qoe_seal_pruned_hours(integer, timestamptz);

CREATE OR REPLACE FUNCTION clear_qoe_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup,
             qoe_rollup_dirty_hours;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION refresh_qoe_rollups() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
    breakdown text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('refresh_qoe_rollups')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (DELETE FROM qoe_rollup_dirty_hours RETURNING hour)
    SELECT array_agg(DISTINCT hour) INTO hours FROM taken;
    IF hours IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM qoe_hourly_rollup WHERE hour = ANY (hours);
    INSERT INTO qoe_hourly_rollup SELECT * FROM qoe_hourly_aggregate(hours);

    PERFORM qoe_add_hours_to_days(hours, -1);
    DELETE FROM qoe_hourly_breakdown_rollup WHERE hour = ANY (hours);
    FOREACH breakdown IN ARRAY ARRAY['app_version', 'device_model', 'device_os_version',
                                     'content_id'] LOOP
        INSERT INTO qoe_hourly_breakdown_rollup
        SELECT * FROM qoe_hourly_breakdown_aggregate(hours, breakdown);
    END LOOP;
    -- The same per value across the four filter dimensions, as '<breakdown> total' rows
    -- (the app kept for app versions): what a breakdown with every filter on "All" reads,
    -- several times fewer rows (qoe_breakdown_rows()).
    INSERT INTO qoe_hourly_breakdown_rollup
    SELECT r.hour, r.dimension || ' total', r.value,
           CASE WHEN r.dimension = 'app_version' THEN r.app_name ELSE 'all' END,
           'all', 'all', 'all', sum(r.sessions), sum(r.failed_sessions),
           sum(r.started_sessions), sum(r.rebuffer_ms_sum), sum(r.watch_ms_sum),
           sum(r.startup_histogram), r.tenant_id
    FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
    GROUP BY 1, 2, 3, 4, r.tenant_id;
    PERFORM qoe_add_hours_to_days(hours, 1);
    RETURN cardinality(hours);
END
$$;

CREATE OR REPLACE FUNCTION mark_qoe_rollups_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM new_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT date_trunc('hour', ended_at, 'UTC') FROM old_rows
        UNION
        SELECT date_trunc('hour', ended_at, 'UTC') FROM new_rows;
    ELSE
        INSERT INTO qoe_rollup_dirty_hours (hour)
        SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM old_rows;
    END IF;
    RETURN NULL;
END
$$;

DROP INDEX sessions_tenant_id_ended_at_idx;
DROP TABLE qoe_pruned_before;
ALTER TABLE tenants DROP COLUMN retention_days;
