-- migrate:up
-- A tenant dimension in every rollup, and a tenant filter in every dashboard function
-- (issue 7, part 6; docs/grafana.md "Tenants").
--
-- Every rollup row (qoe_hourly_rollup, qoe_hourly_breakdown_rollup and
-- qoe_daily_breakdown_rollup, their '<breakdown> total' rows included) now belongs to one
-- tenant, so a tenant's numbers are read from its own rows and "All" is the sum of every
-- tenant's. qoe_rollup_dirty_hours stays per hour: a refresh recomputes a dirty hour for
-- every tenant at once, which costs the same single pass over that hour's sessions.
--
-- qoe_overview(), qoe_breakdown() and qoe_dimension_values() take a last argument
-- `tenants`: the ids of the tenants to count, as text (the values of the dashboards'
-- `tenant` variable); NULL, an empty array or '*' (the variable's All) count every tenant.

-- The tenant filter, like qoe_selected(): a plain expression PostgreSQL inlines.
CREATE FUNCTION qoe_tenant_selected(tenant integer, selection text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT selection IS NULL OR cardinality(selection) = 0 OR '*' = ANY (selection)
           OR tenant::text = ANY (selection)
$$;

-- The old views over the rollups are recreated below with the tenant column.
DROP VIEW qoe_hourly;
DROP VIEW qoe_daily_breakdown;

-- Emptied here and rebuilt per tenant by the backfill at the end.
TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup;
ALTER TABLE qoe_hourly_rollup ADD COLUMN tenant_id integer NOT NULL;
ALTER TABLE qoe_hourly_breakdown_rollup ADD COLUMN tenant_id integer NOT NULL;
ALTER TABLE qoe_daily_breakdown_rollup ADD COLUMN tenant_id integer NOT NULL;
ALTER TABLE qoe_hourly_rollup DROP CONSTRAINT qoe_hourly_rollup_pkey;
ALTER TABLE qoe_hourly_rollup ADD CONSTRAINT qoe_hourly_rollup_pkey
    PRIMARY KEY (hour, tenant_id, app_name, app_version, stream_type, device_os);
ALTER TABLE qoe_hourly_breakdown_rollup DROP CONSTRAINT qoe_hourly_breakdown_rollup_pkey;
ALTER TABLE qoe_hourly_breakdown_rollup ADD CONSTRAINT qoe_hourly_breakdown_rollup_pkey
    PRIMARY KEY (dimension, hour, tenant_id, app_name, app_version, stream_type, device_os,
                 value);
ALTER TABLE qoe_daily_breakdown_rollup DROP CONSTRAINT qoe_daily_breakdown_rollup_pkey;
ALTER TABLE qoe_daily_breakdown_rollup ADD CONSTRAINT qoe_daily_breakdown_rollup_pkey
    PRIMARY KEY (dimension, day, tenant_id, app_name, app_version, stream_type, device_os,
                 value);

-- The session explorer looks a session up by its id: the primary key starts with
-- tenant_id now (20261126110000), so the id needs an index of its own.
CREATE INDEX sessions_session_id_idx ON sessions (session_id);

-- The functions whose signature gains the tenant (the old ones would stay callable
-- otherwise, counting every tenant without saying so).
DROP FUNCTION qoe_dimension_values(timestamptz, timestamptz, text, text[]);
DROP FUNCTION qoe_breakdown(timestamptz, timestamptz, text, text[], text[], text[], text[]);
DROP FUNCTION qoe_overview(timestamptz, timestamptz, bigint, text[], text[], text[], text[]);
DROP FUNCTION qoe_sessions_sums(timestamptz, timestamptz, interval, boolean, text, text[],
    text[], text[], text[]);

-- The definitions of 20261126100000_exact_qoe_dashboards.sql, with the tenant: per tenant
-- when by_dimensions (the rollups), filtered by `tenants` everywhere.
CREATE OR REPLACE VIEW qoe_session_facts AS
SELECT s.session_id,
       s.ended_at,
       coalesce(s.app_name, 'unknown') AS app_name,
       coalesce(s.app_version, 'unknown') AS app_version,
       coalesce(s.stream_type, 'unknown') AS stream_type,
       coalesce(s.device_os, 'unknown') AS device_os,
       coalesce(s.device_model, 'unknown') AS device_model,
       coalesce(s.device_os_version, 'unknown') AS device_os_version,
       coalesce(s.content_id, 'unknown') AS content_id,
       -- playback failure: at least one fatal error
       (coalesce(s.error_count, 0) > 0)::integer AS failed,
       -- exit before video start: no first frame and no failure
       (s.startup_time_ms IS NULL AND coalesce(s.error_count, 0) = 0)::integer AS ebvs,
       (s.startup_time_ms IS NOT NULL)::integer AS started,
       s.startup_time_ms AS startup_ms,
       -- Mux's startup time score, 8 / (8 + seconds) x 100; NULL when it never started
       800000.0::double precision / (8000 + s.startup_time_ms) AS startup_score,
       -- Mux's smoothness score, over sessions that started
       CASE WHEN s.startup_time_ms IS NOT NULL THEN
           (100 / sqrt(1 + (coalesce(s.rebuffer_count, 0) / 2.0::double precision) ^ 2)
            + 100 * exp(-10 * CASE WHEN w.watch_ms > 0
                                   THEN coalesce(s.rebuffer_time_ms, 0)::double precision
                                        / w.watch_ms
                                   ELSE 0 END)) / 2
       END AS smoothness_score,
       -- playback success: views under 1 s are not scored (payload B has no duration)
       (coalesce(s.session_duration_ms, 1000) >= 1000)::integer AS scored,
       CASE WHEN coalesce(s.session_duration_ms, 1000) < 1000 THEN NULL
            WHEN coalesce(s.error_count, 0) > 0 THEN 0
            WHEN s.startup_time_ms IS NULL THEN 50
            ELSE 100 END AS success_score,
       coalesce(s.rebuffer_time_ms, 0) AS rebuffer_ms,
       w.watch_ms,  -- play + rebuffer time
       coalesce(s.rebuffer_count, 0) AS rebuffer_count,
       coalesce(s.play_time_ms, 0) AS play_ms,
       coalesce(s.total_dropped_frames, 0) AS dropped_frames,
       s.mean_video_format_bitrate AS bitrate,
       width_bucket(s.startup_time_ms::double precision, startup_histogram_bounds())
           AS startup_bucket,
       s.tenant_id
FROM sessions AS s
CROSS JOIN LATERAL (
    SELECT coalesce(s.play_time_ms, 0) + coalesce(s.rebuffer_time_ms, 0) AS watch_ms
) AS w;

CREATE FUNCTION qoe_sessions_sums(
    lo timestamptz, hi timestamptz, grain interval, by_dimensions boolean, breakdown text,
    apps text[], versions text[], streams text[], oses text[], tenants text[])
RETURNS TABLE (
    period timestamptz, value text, app_name text, app_version text, stream_type text,
    device_os text, sessions bigint, failed_sessions bigint, ebvs_sessions bigint,
    started_sessions bigint, startup_ms_sum bigint, startup_score_sum double precision,
    smoothness_score_sum double precision, scored_sessions bigint, success_score_sum bigint,
    rebuffer_ms_sum bigint, watch_ms_sum bigint, rebuffer_count_sum bigint, play_ms_sum bigint,
    dropped_frames_sum bigint, bitrate_sum numeric, bitrate_sessions bigint,
    startup_histogram numeric, tenant_id integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- Counted per startup bucket first, so the numeric histogram is built once per group
    -- rather than once per session.
    SELECT period, value, app_name, app_version, stream_type, device_os,
           sum(sessions)::bigint, sum(failed)::bigint, sum(ebvs)::bigint, sum(started)::bigint,
           sum(startup_ms)::bigint, sum(startup_score), sum(smoothness_score),
           sum(scored)::bigint, sum(success_score)::bigint, sum(rebuffer_ms)::bigint,
           sum(watch_ms)::bigint, sum(rebuffer_count)::bigint, sum(play_ms)::bigint,
           sum(dropped_frames)::bigint, sum(bitrate), sum(bitrate_sessions)::bigint,
           coalesce(sum(startup_histogram_of(startup_bucket, started)), 0), tenant_id
    FROM (
        SELECT CASE WHEN grain IS NOT NULL
                    THEN date_bin(grain, f.ended_at, timestamptz '1970-01-01Z') END AS period,
               CASE breakdown
                   WHEN 'app_version' THEN f.app_version
                   WHEN 'device_model' THEN f.device_model
                   WHEN 'device_os_version' THEN f.device_os_version
                   WHEN 'content_id' THEN f.content_id
               END AS value,
               CASE WHEN by_dimensions THEN f.app_name END AS app_name,
               CASE WHEN by_dimensions THEN f.app_version END AS app_version,
               CASE WHEN by_dimensions THEN f.stream_type END AS stream_type,
               CASE WHEN by_dimensions THEN f.device_os END AS device_os,
               CASE WHEN by_dimensions THEN f.tenant_id END AS tenant_id,
               f.startup_bucket,
               count(*) AS sessions,
               sum(f.failed) AS failed,
               sum(f.ebvs) AS ebvs,
               sum(f.started) AS started,
               coalesce(sum(f.startup_ms), 0) AS startup_ms,
               coalesce(sum(f.startup_score), 0) AS startup_score,
               coalesce(sum(f.smoothness_score), 0) AS smoothness_score,
               sum(f.scored) AS scored,
               coalesce(sum(f.success_score), 0) AS success_score,
               sum(f.rebuffer_ms) AS rebuffer_ms,
               sum(f.watch_ms) AS watch_ms,
               sum(f.rebuffer_count) AS rebuffer_count,
               sum(f.play_ms) AS play_ms,
               sum(f.dropped_frames) AS dropped_frames,
               coalesce(sum(f.bitrate), 0) AS bitrate,
               count(f.bitrate) AS bitrate_sessions
        FROM qoe_session_facts AS f
        WHERE f.ended_at >= lo AND f.ended_at < hi
          AND qoe_selected(f.app_name, apps) AND qoe_selected(f.app_version, versions)
          AND qoe_selected(f.stream_type, streams) AND qoe_selected(f.device_os, oses)
          AND qoe_tenant_selected(f.tenant_id, tenants)
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    ) AS per_bucket
    GROUP BY 1, 2, 3, 4, 5, 6, tenant_id
$$;

CREATE OR REPLACE FUNCTION qoe_hourly_aggregate(hours timestamptz[])
RETURNS SETOF qoe_hourly_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.hour, a.app_name, a.app_version, a.stream_type, a.device_os, a.sessions,
           a.failed_sessions, a.ebvs_sessions, a.started_sessions, a.startup_ms_sum,
           a.startup_score_sum, a.smoothness_score_sum, a.scored_sessions, a.success_score_sum,
           a.rebuffer_ms_sum, a.watch_ms_sum, a.rebuffer_count_sum, a.play_ms_sum,
           a.dropped_frames_sum, a.bitrate_sum, a.bitrate_sessions, a.startup_histogram, a.tenant_id
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true, NULL,
                                         '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;

CREATE OR REPLACE FUNCTION qoe_daily_breakdown_aggregate(days timestamptz[], breakdown text)
RETURNS SETOF qoe_daily_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.day, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram, a.tenant_id
    FROM unnest(days) AS d (day)
    CROSS JOIN LATERAL qoe_sessions_sums(d.day, d.day + interval '24 hours', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;

CREATE OR REPLACE FUNCTION qoe_hourly_breakdown_aggregate(hours timestamptz[], breakdown text)
RETURNS SETOF qoe_hourly_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.hour, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram, a.tenant_id
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;

CREATE OR REPLACE FUNCTION qoe_add_hours_to_days(hours timestamptz[], sign integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO qoe_daily_breakdown_rollup AS d
    SELECT date_trunc('day', r.hour, 'UTC'), r.dimension, r.value, r.app_name, r.app_version,
           r.stream_type, r.device_os, sign * sum(r.sessions), sign * sum(r.failed_sessions),
           sign * sum(r.started_sessions), sign * sum(r.rebuffer_ms_sum),
           sign * sum(r.watch_ms_sum), sign * sum(r.startup_histogram), r.tenant_id
    FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
    GROUP BY 1, 2, 3, 4, 5, 6, 7, r.tenant_id
    ON CONFLICT (dimension, day, tenant_id, app_name, app_version, stream_type, device_os, value)
    DO UPDATE SET sessions = d.sessions + EXCLUDED.sessions,
                  failed_sessions = d.failed_sessions + EXCLUDED.failed_sessions,
                  started_sessions = d.started_sessions + EXCLUDED.started_sessions,
                  rebuffer_ms_sum = d.rebuffer_ms_sum + EXCLUDED.rebuffer_ms_sum,
                  watch_ms_sum = d.watch_ms_sum + EXCLUDED.watch_ms_sum,
                  startup_histogram = d.startup_histogram + EXCLUDED.startup_histogram;
    DELETE FROM qoe_daily_breakdown_rollup
    WHERE day = ANY (ARRAY(SELECT DISTINCT date_trunc('day', h, 'UTC') FROM unnest(hours) AS h))
      AND sessions = 0;
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

CREATE FUNCTION qoe_overview(
    range_from timestamptz, range_to timestamptz, bucket_ms bigint,
    apps text[], versions text[], streams text[], oses text[], tenants text[] DEFAULT NULL)
RETURNS TABLE (
    "time" timestamptz, sessions bigint, started_sessions bigint, failure_rate double precision,
    ebvs_rate double precision, startup_p50 double precision, startup_p95 double precision,
    startup_p99 double precision, rebuffer_pct double precision,
    rebuffers_per_minute double precision, mean_bitrate double precision,
    dropped_frames_per_minute double precision, dropped_frames bigint,
    startup_score double precision, smoothness_score double precision,
    success_score double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(a.period, range_from), m.*
    FROM (
        SELECT p.period, sum(p.sessions) AS sessions, sum(p.failed_sessions) AS failed,
               sum(p.ebvs_sessions) AS ebvs, sum(p.started_sessions) AS started,
               sum(p.startup_score_sum) AS startup_score,
               sum(p.smoothness_score_sum) AS smoothness, sum(p.scored_sessions) AS scored,
               sum(p.success_score_sum) AS success, sum(p.rebuffer_ms_sum) AS rebuffer_ms,
               sum(p.watch_ms_sum) AS watch_ms, sum(p.rebuffer_count_sum) AS rebuffer_count,
               sum(p.play_ms_sum) AS play_ms, sum(p.dropped_frames_sum) AS dropped_frames,
               sum(p.bitrate_sum) AS bitrate, sum(p.bitrate_sessions) AS bitrate_sessions,
               sum(p.startup_histogram) AS histogram
        FROM (
            -- whole hours (when a bucket is a whole number of hours) from the rollup ...
            SELECT CASE WHEN bucket_ms IS NOT NULL
                        THEN date_bin(bucket_ms * interval '1 millisecond', r.hour,
                                      timestamptz '1970-01-01Z') END AS period,
                   r.sessions, r.failed_sessions, r.ebvs_sessions, r.started_sessions,
                   r.startup_score_sum, r.smoothness_score_sum, r.scored_sessions,
                   r.success_score_sum, r.rebuffer_ms_sum, r.watch_ms_sum,
                   r.rebuffer_count_sum, r.play_ms_sum, r.dropped_frames_sum, r.bitrate_sum,
                   r.bitrate_sessions, r.startup_histogram
            FROM qoe_hourly_rollup AS r
            WHERE (bucket_ms IS NULL OR bucket_ms % 3600000 = 0)
              AND r.hour >= lower(qoe_range_hours(range_from, range_to))
              AND r.hour < upper(qoe_range_hours(range_from, range_to))
              AND NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
              AND qoe_tenant_selected(r.tenant_id, tenants)
            UNION ALL
            -- ... but those written since the last refresh from `sessions`
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM (SELECT DISTINCT d.hour FROM qoe_rollup_dirty_hours AS d
                  WHERE (bucket_ms IS NULL OR bucket_ms % 3600000 = 0)
                    AND d.hour >= lower(qoe_range_hours(range_from, range_to))
                    AND d.hour < upper(qoe_range_hours(range_from, range_to))) AS dirty
            CROSS JOIN LATERAL qoe_sessions_sums(
                dirty.hour, dirty.hour + interval '1 hour', bucket_ms * interval '1 millisecond',
                false, NULL, apps, versions, streams, oses, tenants) AS e
            UNION ALL
            -- the rest of the range: before the whole hours (or all of it) ...
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM qoe_sessions_sums(
                range_from,
                CASE WHEN bucket_ms IS NULL OR bucket_ms % 3600000 = 0
                     THEN coalesce(lower(qoe_range_hours(range_from, range_to)),
                                   range_to + interval '1 microsecond')
                     ELSE range_to + interval '1 microsecond' END,
                bucket_ms * interval '1 millisecond', false, NULL,
                apps, versions, streams, oses, tenants) AS e
            UNION ALL
            -- ... and after them
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM qoe_sessions_sums(
                upper(qoe_range_hours(range_from, range_to)),
                range_to + interval '1 microsecond',
                bucket_ms * interval '1 millisecond', false, NULL,
                apps, versions, streams, oses, tenants) AS e
            WHERE bucket_ms IS NULL OR bucket_ms % 3600000 = 0
            UNION ALL
            -- a stat shows 0 sessions (not "no data") for a range without any
            SELECT NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            WHERE bucket_ms IS NULL
        ) AS p
        GROUP BY p.period
    ) AS a
    CROSS JOIN LATERAL qoe_metrics(
        a.sessions, a.failed, a.started, a.rebuffer_ms, a.watch_ms, a.histogram,
        sum_ebvs => a.ebvs, sum_startup_score => a.startup_score,
        sum_smoothness_score => a.smoothness, sum_scored => a.scored,
        sum_success_score => a.success, sum_rebuffer_count => a.rebuffer_count,
        sum_play_ms => a.play_ms, sum_dropped_frames => a.dropped_frames,
        sum_bitrate => a.bitrate, sum_bitrate_sessions => a.bitrate_sessions) AS m
    ORDER BY 1
$$;

CREATE FUNCTION qoe_breakdown(
    range_from timestamptz, range_to timestamptz, breakdown text,
    apps text[], versions text[], streams text[], oses text[], tenants text[] DEFAULT NULL)
RETURNS TABLE (
    app_name text, value text, sessions bigint, startup_p95 double precision,
    rebuffer_pct double precision, failure_rate double precision)
LANGUAGE sql STABLE AS $$
    WITH dirty AS MATERIALIZED (
        SELECT DISTINCT d.hour
        FROM qoe_rollup_dirty_hours AS d
        WHERE d.hour >= lower(qoe_range_hours(range_from, range_to))
          AND d.hour < upper(qoe_range_hours(range_from, range_to))
    )
    SELECT a.app_name, a.value, a.sessions::bigint, m.startup_p95, m.rebuffer_pct,
           m.failure_rate
    FROM (
        SELECT CASE WHEN breakdown = 'app_version' THEN p.app_name END AS app_name, p.value,
               sum(p.sessions) AS sessions, sum(p.failed_sessions) AS failed,
               sum(p.started_sessions) AS started, sum(p.rebuffer_ms_sum) AS rebuffer_ms,
               sum(p.watch_ms_sum) AS watch_ms, sum(p.startup_histogram) AS histogram
        FROM (
            -- whole days
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_daily_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.day >= lower(qoe_range_days(range_from, range_to))
              AND r.day < upper(qoe_range_days(range_from, range_to))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
              AND qoe_tenant_selected(r.tenant_id, tenants)
            UNION ALL
            -- whole hours before and after the whole days
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_hourly_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.hour >= lower(qoe_range_hours(range_from, range_to))
              AND r.hour < coalesce(lower(qoe_range_days(range_from, range_to)),
                                    upper(qoe_range_hours(range_from, range_to)))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
              AND qoe_tenant_selected(r.tenant_id, tenants)
            UNION ALL
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_hourly_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.hour >= upper(qoe_range_days(range_from, range_to))
              AND r.hour < upper(qoe_range_hours(range_from, range_to))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
              AND qoe_tenant_selected(r.tenant_id, tenants)
            UNION ALL
            -- whole hours written since the last refresh: out with what the rollups hold ...
            SELECT r.app_name, r.value, -r.sessions, -r.failed_sessions, -r.started_sessions,
                   -r.rebuffer_ms_sum, -r.watch_ms_sum, -r.startup_histogram
            FROM dirty
            JOIN qoe_hourly_breakdown_rollup AS r
              ON r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
             AND r.hour = dirty.hour
            WHERE qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
              AND qoe_tenant_selected(r.tenant_id, tenants)
            UNION ALL
            -- ... and in with what `sessions` holds
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM dirty
            CROSS JOIN LATERAL qoe_sessions_sums(dirty.hour, dirty.hour + interval '1 hour',
                                                 NULL, breakdown = 'app_version', breakdown,
                                                 apps, versions, streams, oses, tenants) AS e
            UNION ALL
            -- the partial hours at both ends (or the whole range when it has no whole hour)
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM qoe_sessions_sums(range_from,
                                   coalesce(lower(qoe_range_hours(range_from, range_to)),
                                            range_to + interval '1 microsecond'),
                                   NULL, breakdown = 'app_version', breakdown,
                                   apps, versions, streams, oses, tenants) AS e
            UNION ALL
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM qoe_sessions_sums(upper(qoe_range_hours(range_from, range_to)),
                                   range_to + interval '1 microsecond',
                                   NULL, breakdown = 'app_version', breakdown,
                                   apps, versions, streams, oses, tenants) AS e
        ) AS p
        GROUP BY 1, 2
        HAVING sum(p.sessions) > 0
    ) AS a
    CROSS JOIN LATERAL qoe_metrics(a.sessions, a.failed, a.started, a.rebuffer_ms, a.watch_ms,
                                   a.histogram) AS m
$$;

CREATE FUNCTION qoe_dimension_values(
    range_from timestamptz, range_to timestamptz, dimension text, apps text[],
    tenants text[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT v.value
    FROM (
        -- whole hours from the rollup, but those written since the last refresh ...
        SELECT CASE dimension WHEN 'app_name' THEN r.app_name
                              WHEN 'app_version' THEN r.app_version
                              WHEN 'stream_type' THEN r.stream_type
                              WHEN 'device_os' THEN r.device_os END
        FROM qoe_hourly_rollup AS r
        WHERE r.hour >= lower(qoe_range_hours(range_from, range_to))
          AND r.hour < upper(qoe_range_hours(range_from, range_to))
          AND NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
          AND qoe_selected(r.app_name, apps) AND qoe_tenant_selected(r.tenant_id, tenants)
        UNION
        -- ... which come from `sessions`, like the partial hours at both ends
        SELECT CASE dimension WHEN 'app_name' THEN f.app_name
                              WHEN 'app_version' THEN f.app_version
                              WHEN 'stream_type' THEN f.stream_type
                              WHEN 'device_os' THEN f.device_os END
        FROM (SELECT range_from,
                     coalesce(lower(qoe_range_hours(range_from, range_to)),
                              range_to + interval '1 microsecond')
              UNION ALL
              SELECT upper(qoe_range_hours(range_from, range_to)),
                     range_to + interval '1 microsecond'
              UNION ALL
              SELECT DISTINCT d.hour, d.hour + interval '1 hour'
              FROM qoe_rollup_dirty_hours AS d
              WHERE d.hour >= lower(qoe_range_hours(range_from, range_to))
                AND d.hour < upper(qoe_range_hours(range_from, range_to))) AS piece (lo, hi)
        JOIN qoe_session_facts AS f ON f.ended_at >= piece.lo AND f.ended_at < piece.hi
        WHERE qoe_selected(f.app_name, apps) AND qoe_tenant_selected(f.tenant_id, tenants)
    ) AS v (value)
    WHERE v.value IS NOT NULL
    ORDER BY 1
$$;

CREATE VIEW qoe_hourly AS
WITH dirty AS MATERIALIZED (
    SELECT ARRAY(SELECT DISTINCT hour FROM qoe_rollup_dirty_hours) AS hours
)
SELECT r.*
FROM qoe_hourly_rollup AS r
WHERE NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
UNION ALL
SELECT a.* FROM dirty, qoe_hourly_aggregate(dirty.hours) AS a;

CREATE VIEW qoe_daily_breakdown AS
SELECT * FROM qoe_daily_breakdown_rollup;

GRANT SELECT ON qoe_hourly, qoe_daily_breakdown TO m3w_dashboards;

-- Backfill every stored hour, now per tenant (as in 20261126100000: here if no refresh is
-- running, else by the next one; the dashboards are exact meanwhile).
INSERT INTO qoe_rollup_dirty_hours (hour)
SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM sessions;
SELECT refresh_qoe_rollups();

-- migrate:down
DROP VIEW qoe_hourly;
DROP VIEW qoe_daily_breakdown;
DROP INDEX sessions_session_id_idx;
DROP FUNCTION qoe_dimension_values(timestamptz, timestamptz, text, text[], text[]);
DROP FUNCTION qoe_breakdown(timestamptz, timestamptz, text, text[], text[], text[], text[],
    text[]);
DROP FUNCTION qoe_overview(timestamptz, timestamptz, bigint, text[], text[], text[], text[],
    text[]);
DROP FUNCTION qoe_sessions_sums(timestamptz, timestamptz, interval, boolean, text, text[],
    text[], text[], text[], text[]);
-- CREATE OR REPLACE VIEW cannot drop a column; no object records a dependency on it.
DROP VIEW qoe_session_facts;

TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup;
ALTER TABLE qoe_hourly_rollup DROP COLUMN tenant_id;
ALTER TABLE qoe_hourly_breakdown_rollup DROP COLUMN tenant_id;
ALTER TABLE qoe_daily_breakdown_rollup DROP COLUMN tenant_id;
ALTER TABLE qoe_hourly_rollup ADD CONSTRAINT qoe_hourly_rollup_pkey
    PRIMARY KEY (hour, app_name, app_version, stream_type, device_os);
ALTER TABLE qoe_hourly_breakdown_rollup ADD CONSTRAINT qoe_hourly_breakdown_rollup_pkey
    PRIMARY KEY (dimension, hour, app_name, app_version, stream_type, device_os, value);
ALTER TABLE qoe_daily_breakdown_rollup ADD CONSTRAINT qoe_daily_breakdown_rollup_pkey
    PRIMARY KEY (dimension, day, app_name, app_version, stream_type, device_os, value);

-- The definitions of 20261126100000_exact_qoe_dashboards.sql, unchanged.
CREATE VIEW qoe_session_facts AS
SELECT s.session_id,
       s.ended_at,
       coalesce(s.app_name, 'unknown') AS app_name,
       coalesce(s.app_version, 'unknown') AS app_version,
       coalesce(s.stream_type, 'unknown') AS stream_type,
       coalesce(s.device_os, 'unknown') AS device_os,
       coalesce(s.device_model, 'unknown') AS device_model,
       coalesce(s.device_os_version, 'unknown') AS device_os_version,
       coalesce(s.content_id, 'unknown') AS content_id,
       -- playback failure: at least one fatal error
       (coalesce(s.error_count, 0) > 0)::integer AS failed,
       -- exit before video start: no first frame and no failure
       (s.startup_time_ms IS NULL AND coalesce(s.error_count, 0) = 0)::integer AS ebvs,
       (s.startup_time_ms IS NOT NULL)::integer AS started,
       s.startup_time_ms AS startup_ms,
       -- Mux's startup time score, 8 / (8 + seconds) x 100; NULL when it never started
       800000.0::double precision / (8000 + s.startup_time_ms) AS startup_score,
       -- Mux's smoothness score, over sessions that started
       CASE WHEN s.startup_time_ms IS NOT NULL THEN
           (100 / sqrt(1 + (coalesce(s.rebuffer_count, 0) / 2.0::double precision) ^ 2)
            + 100 * exp(-10 * CASE WHEN w.watch_ms > 0
                                   THEN coalesce(s.rebuffer_time_ms, 0)::double precision
                                        / w.watch_ms
                                   ELSE 0 END)) / 2
       END AS smoothness_score,
       -- playback success: views under 1 s are not scored (payload B has no duration)
       (coalesce(s.session_duration_ms, 1000) >= 1000)::integer AS scored,
       CASE WHEN coalesce(s.session_duration_ms, 1000) < 1000 THEN NULL
            WHEN coalesce(s.error_count, 0) > 0 THEN 0
            WHEN s.startup_time_ms IS NULL THEN 50
            ELSE 100 END AS success_score,
       coalesce(s.rebuffer_time_ms, 0) AS rebuffer_ms,
       w.watch_ms,  -- play + rebuffer time
       coalesce(s.rebuffer_count, 0) AS rebuffer_count,
       coalesce(s.play_time_ms, 0) AS play_ms,
       coalesce(s.total_dropped_frames, 0) AS dropped_frames,
       s.mean_video_format_bitrate AS bitrate,
       width_bucket(s.startup_time_ms::double precision, startup_histogram_bounds())
           AS startup_bucket
FROM sessions AS s
CROSS JOIN LATERAL (
    SELECT coalesce(s.play_time_ms, 0) + coalesce(s.rebuffer_time_ms, 0) AS watch_ms
) AS w;

CREATE FUNCTION qoe_sessions_sums(
    lo timestamptz, hi timestamptz, grain interval, by_dimensions boolean, breakdown text,
    apps text[], versions text[], streams text[], oses text[])
RETURNS TABLE (
    period timestamptz, value text, app_name text, app_version text, stream_type text,
    device_os text, sessions bigint, failed_sessions bigint, ebvs_sessions bigint,
    started_sessions bigint, startup_ms_sum bigint, startup_score_sum double precision,
    smoothness_score_sum double precision, scored_sessions bigint, success_score_sum bigint,
    rebuffer_ms_sum bigint, watch_ms_sum bigint, rebuffer_count_sum bigint, play_ms_sum bigint,
    dropped_frames_sum bigint, bitrate_sum numeric, bitrate_sessions bigint,
    startup_histogram numeric)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- Counted per startup bucket first, so the numeric histogram is built once per group
    -- rather than once per session.
    SELECT period, value, app_name, app_version, stream_type, device_os,
           sum(sessions)::bigint, sum(failed)::bigint, sum(ebvs)::bigint, sum(started)::bigint,
           sum(startup_ms)::bigint, sum(startup_score), sum(smoothness_score),
           sum(scored)::bigint, sum(success_score)::bigint, sum(rebuffer_ms)::bigint,
           sum(watch_ms)::bigint, sum(rebuffer_count)::bigint, sum(play_ms)::bigint,
           sum(dropped_frames)::bigint, sum(bitrate), sum(bitrate_sessions)::bigint,
           coalesce(sum(startup_histogram_of(startup_bucket, started)), 0)
    FROM (
        SELECT CASE WHEN grain IS NOT NULL
                    THEN date_bin(grain, f.ended_at, timestamptz '1970-01-01Z') END AS period,
               CASE breakdown
                   WHEN 'app_version' THEN f.app_version
                   WHEN 'device_model' THEN f.device_model
                   WHEN 'device_os_version' THEN f.device_os_version
                   WHEN 'content_id' THEN f.content_id
               END AS value,
               CASE WHEN by_dimensions THEN f.app_name END AS app_name,
               CASE WHEN by_dimensions THEN f.app_version END AS app_version,
               CASE WHEN by_dimensions THEN f.stream_type END AS stream_type,
               CASE WHEN by_dimensions THEN f.device_os END AS device_os,
               f.startup_bucket,
               count(*) AS sessions,
               sum(f.failed) AS failed,
               sum(f.ebvs) AS ebvs,
               sum(f.started) AS started,
               coalesce(sum(f.startup_ms), 0) AS startup_ms,
               coalesce(sum(f.startup_score), 0) AS startup_score,
               coalesce(sum(f.smoothness_score), 0) AS smoothness_score,
               sum(f.scored) AS scored,
               coalesce(sum(f.success_score), 0) AS success_score,
               sum(f.rebuffer_ms) AS rebuffer_ms,
               sum(f.watch_ms) AS watch_ms,
               sum(f.rebuffer_count) AS rebuffer_count,
               sum(f.play_ms) AS play_ms,
               sum(f.dropped_frames) AS dropped_frames,
               coalesce(sum(f.bitrate), 0) AS bitrate,
               count(f.bitrate) AS bitrate_sessions
        FROM qoe_session_facts AS f
        WHERE f.ended_at >= lo AND f.ended_at < hi
          AND qoe_selected(f.app_name, apps) AND qoe_selected(f.app_version, versions)
          AND qoe_selected(f.stream_type, streams) AND qoe_selected(f.device_os, oses)
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ) AS per_bucket
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

CREATE OR REPLACE FUNCTION qoe_hourly_aggregate(hours timestamptz[])
RETURNS SETOF qoe_hourly_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.hour, a.app_name, a.app_version, a.stream_type, a.device_os, a.sessions,
           a.failed_sessions, a.ebvs_sessions, a.started_sessions, a.startup_ms_sum,
           a.startup_score_sum, a.smoothness_score_sum, a.scored_sessions, a.success_score_sum,
           a.rebuffer_ms_sum, a.watch_ms_sum, a.rebuffer_count_sum, a.play_ms_sum,
           a.dropped_frames_sum, a.bitrate_sum, a.bitrate_sessions, a.startup_histogram
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true, NULL,
                                         '{*}', '{*}', '{*}', '{*}') AS a
$$;

CREATE OR REPLACE FUNCTION qoe_daily_breakdown_aggregate(days timestamptz[], breakdown text)
RETURNS SETOF qoe_daily_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.day, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram
    FROM unnest(days) AS d (day)
    CROSS JOIN LATERAL qoe_sessions_sums(d.day, d.day + interval '24 hours', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}') AS a
$$;

CREATE OR REPLACE FUNCTION qoe_hourly_breakdown_aggregate(hours timestamptz[], breakdown text)
RETURNS SETOF qoe_hourly_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.hour, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}') AS a
$$;

CREATE OR REPLACE FUNCTION qoe_add_hours_to_days(hours timestamptz[], sign integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO qoe_daily_breakdown_rollup AS d
    SELECT date_trunc('day', r.hour, 'UTC'), r.dimension, r.value, r.app_name, r.app_version,
           r.stream_type, r.device_os, sign * sum(r.sessions), sign * sum(r.failed_sessions),
           sign * sum(r.started_sessions), sign * sum(r.rebuffer_ms_sum),
           sign * sum(r.watch_ms_sum), sign * sum(r.startup_histogram)
    FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (dimension, day, app_name, app_version, stream_type, device_os, value)
    DO UPDATE SET sessions = d.sessions + EXCLUDED.sessions,
                  failed_sessions = d.failed_sessions + EXCLUDED.failed_sessions,
                  started_sessions = d.started_sessions + EXCLUDED.started_sessions,
                  rebuffer_ms_sum = d.rebuffer_ms_sum + EXCLUDED.rebuffer_ms_sum,
                  watch_ms_sum = d.watch_ms_sum + EXCLUDED.watch_ms_sum,
                  startup_histogram = d.startup_histogram + EXCLUDED.startup_histogram;
    DELETE FROM qoe_daily_breakdown_rollup
    WHERE day = ANY (ARRAY(SELECT DISTINCT date_trunc('day', h, 'UTC') FROM unnest(hours) AS h))
      AND sessions = 0;
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
           sum(r.startup_histogram)
    FROM qoe_hourly_breakdown_rollup AS r
    WHERE r.hour = ANY (hours)
    GROUP BY 1, 2, 3, 4;
    PERFORM qoe_add_hours_to_days(hours, 1);
    RETURN cardinality(hours);
END
$$;

CREATE FUNCTION qoe_overview(
    range_from timestamptz, range_to timestamptz, bucket_ms bigint,
    apps text[], versions text[], streams text[], oses text[])
RETURNS TABLE (
    "time" timestamptz, sessions bigint, started_sessions bigint, failure_rate double precision,
    ebvs_rate double precision, startup_p50 double precision, startup_p95 double precision,
    startup_p99 double precision, rebuffer_pct double precision,
    rebuffers_per_minute double precision, mean_bitrate double precision,
    dropped_frames_per_minute double precision, dropped_frames bigint,
    startup_score double precision, smoothness_score double precision,
    success_score double precision)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(a.period, range_from), m.*
    FROM (
        SELECT p.period, sum(p.sessions) AS sessions, sum(p.failed_sessions) AS failed,
               sum(p.ebvs_sessions) AS ebvs, sum(p.started_sessions) AS started,
               sum(p.startup_score_sum) AS startup_score,
               sum(p.smoothness_score_sum) AS smoothness, sum(p.scored_sessions) AS scored,
               sum(p.success_score_sum) AS success, sum(p.rebuffer_ms_sum) AS rebuffer_ms,
               sum(p.watch_ms_sum) AS watch_ms, sum(p.rebuffer_count_sum) AS rebuffer_count,
               sum(p.play_ms_sum) AS play_ms, sum(p.dropped_frames_sum) AS dropped_frames,
               sum(p.bitrate_sum) AS bitrate, sum(p.bitrate_sessions) AS bitrate_sessions,
               sum(p.startup_histogram) AS histogram
        FROM (
            -- whole hours (when a bucket is a whole number of hours) from the rollup ...
            SELECT CASE WHEN bucket_ms IS NOT NULL
                        THEN date_bin(bucket_ms * interval '1 millisecond', r.hour,
                                      timestamptz '1970-01-01Z') END AS period,
                   r.sessions, r.failed_sessions, r.ebvs_sessions, r.started_sessions,
                   r.startup_score_sum, r.smoothness_score_sum, r.scored_sessions,
                   r.success_score_sum, r.rebuffer_ms_sum, r.watch_ms_sum,
                   r.rebuffer_count_sum, r.play_ms_sum, r.dropped_frames_sum, r.bitrate_sum,
                   r.bitrate_sessions, r.startup_histogram
            FROM qoe_hourly_rollup AS r
            WHERE (bucket_ms IS NULL OR bucket_ms % 3600000 = 0)
              AND r.hour >= lower(qoe_range_hours(range_from, range_to))
              AND r.hour < upper(qoe_range_hours(range_from, range_to))
              AND NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
            UNION ALL
            -- ... but those written since the last refresh from `sessions`
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM (SELECT DISTINCT d.hour FROM qoe_rollup_dirty_hours AS d
                  WHERE (bucket_ms IS NULL OR bucket_ms % 3600000 = 0)
                    AND d.hour >= lower(qoe_range_hours(range_from, range_to))
                    AND d.hour < upper(qoe_range_hours(range_from, range_to))) AS dirty
            CROSS JOIN LATERAL qoe_sessions_sums(
                dirty.hour, dirty.hour + interval '1 hour', bucket_ms * interval '1 millisecond',
                false, NULL, apps, versions, streams, oses) AS e
            UNION ALL
            -- the rest of the range: before the whole hours (or all of it) ...
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM qoe_sessions_sums(
                range_from,
                CASE WHEN bucket_ms IS NULL OR bucket_ms % 3600000 = 0
                     THEN coalesce(lower(qoe_range_hours(range_from, range_to)),
                                   range_to + interval '1 microsecond')
                     ELSE range_to + interval '1 microsecond' END,
                bucket_ms * interval '1 millisecond', false, NULL,
                apps, versions, streams, oses) AS e
            UNION ALL
            -- ... and after them
            SELECT e.period, e.sessions, e.failed_sessions, e.ebvs_sessions,
                   e.started_sessions, e.startup_score_sum, e.smoothness_score_sum,
                   e.scored_sessions, e.success_score_sum, e.rebuffer_ms_sum, e.watch_ms_sum,
                   e.rebuffer_count_sum, e.play_ms_sum, e.dropped_frames_sum, e.bitrate_sum,
                   e.bitrate_sessions, e.startup_histogram
            FROM qoe_sessions_sums(
                upper(qoe_range_hours(range_from, range_to)),
                range_to + interval '1 microsecond',
                bucket_ms * interval '1 millisecond', false, NULL,
                apps, versions, streams, oses) AS e
            WHERE bucket_ms IS NULL OR bucket_ms % 3600000 = 0
            UNION ALL
            -- a stat shows 0 sessions (not "no data") for a range without any
            SELECT NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            WHERE bucket_ms IS NULL
        ) AS p
        GROUP BY p.period
    ) AS a
    CROSS JOIN LATERAL qoe_metrics(
        a.sessions, a.failed, a.started, a.rebuffer_ms, a.watch_ms, a.histogram,
        sum_ebvs => a.ebvs, sum_startup_score => a.startup_score,
        sum_smoothness_score => a.smoothness, sum_scored => a.scored,
        sum_success_score => a.success, sum_rebuffer_count => a.rebuffer_count,
        sum_play_ms => a.play_ms, sum_dropped_frames => a.dropped_frames,
        sum_bitrate => a.bitrate, sum_bitrate_sessions => a.bitrate_sessions) AS m
    ORDER BY 1
$$;

CREATE FUNCTION qoe_breakdown(
    range_from timestamptz, range_to timestamptz, breakdown text,
    apps text[], versions text[], streams text[], oses text[])
RETURNS TABLE (
    app_name text, value text, sessions bigint, startup_p95 double precision,
    rebuffer_pct double precision, failure_rate double precision)
LANGUAGE sql STABLE AS $$
    WITH dirty AS MATERIALIZED (
        SELECT DISTINCT d.hour
        FROM qoe_rollup_dirty_hours AS d
        WHERE d.hour >= lower(qoe_range_hours(range_from, range_to))
          AND d.hour < upper(qoe_range_hours(range_from, range_to))
    )
    SELECT a.app_name, a.value, a.sessions::bigint, m.startup_p95, m.rebuffer_pct,
           m.failure_rate
    FROM (
        SELECT CASE WHEN breakdown = 'app_version' THEN p.app_name END AS app_name, p.value,
               sum(p.sessions) AS sessions, sum(p.failed_sessions) AS failed,
               sum(p.started_sessions) AS started, sum(p.rebuffer_ms_sum) AS rebuffer_ms,
               sum(p.watch_ms_sum) AS watch_ms, sum(p.startup_histogram) AS histogram
        FROM (
            -- whole days
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_daily_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.day >= lower(qoe_range_days(range_from, range_to))
              AND r.day < upper(qoe_range_days(range_from, range_to))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
            UNION ALL
            -- whole hours before and after the whole days
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_hourly_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.hour >= lower(qoe_range_hours(range_from, range_to))
              AND r.hour < coalesce(lower(qoe_range_days(range_from, range_to)),
                                    upper(qoe_range_hours(range_from, range_to)))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
            UNION ALL
            SELECT r.app_name, r.value, r.sessions, r.failed_sessions, r.started_sessions,
                   r.rebuffer_ms_sum, r.watch_ms_sum, r.startup_histogram
            FROM qoe_hourly_breakdown_rollup AS r
            WHERE r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
              AND r.hour >= upper(qoe_range_days(range_from, range_to))
              AND r.hour < upper(qoe_range_hours(range_from, range_to))
              AND qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
            UNION ALL
            -- whole hours written since the last refresh: out with what the rollups hold ...
            SELECT r.app_name, r.value, -r.sessions, -r.failed_sessions, -r.started_sessions,
                   -r.rebuffer_ms_sum, -r.watch_ms_sum, -r.startup_histogram
            FROM dirty
            JOIN qoe_hourly_breakdown_rollup AS r
              ON r.dimension = qoe_breakdown_rows(breakdown, apps, versions, streams, oses)
             AND r.hour = dirty.hour
            WHERE qoe_selected(r.app_name, apps) AND qoe_selected(r.app_version, versions)
              AND qoe_selected(r.stream_type, streams) AND qoe_selected(r.device_os, oses)
            UNION ALL
            -- ... and in with what `sessions` holds
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM dirty
            CROSS JOIN LATERAL qoe_sessions_sums(dirty.hour, dirty.hour + interval '1 hour',
                                                 NULL, breakdown = 'app_version', breakdown,
                                                 apps, versions, streams, oses) AS e
            UNION ALL
            -- the partial hours at both ends (or the whole range when it has no whole hour)
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM qoe_sessions_sums(range_from,
                                   coalesce(lower(qoe_range_hours(range_from, range_to)),
                                            range_to + interval '1 microsecond'),
                                   NULL, breakdown = 'app_version', breakdown,
                                   apps, versions, streams, oses) AS e
            UNION ALL
            SELECT e.app_name, e.value, e.sessions, e.failed_sessions, e.started_sessions,
                   e.rebuffer_ms_sum, e.watch_ms_sum, e.startup_histogram
            FROM qoe_sessions_sums(upper(qoe_range_hours(range_from, range_to)),
                                   range_to + interval '1 microsecond',
                                   NULL, breakdown = 'app_version', breakdown,
                                   apps, versions, streams, oses) AS e
        ) AS p
        GROUP BY 1, 2
        HAVING sum(p.sessions) > 0
    ) AS a
    CROSS JOIN LATERAL qoe_metrics(a.sessions, a.failed, a.started, a.rebuffer_ms, a.watch_ms,
                                   a.histogram) AS m
$$;

CREATE FUNCTION qoe_dimension_values(
    range_from timestamptz, range_to timestamptz, dimension text, apps text[])
RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT v.value
    FROM (
        -- whole hours from the rollup, but those written since the last refresh ...
        SELECT CASE dimension WHEN 'app_name' THEN r.app_name
                              WHEN 'app_version' THEN r.app_version
                              WHEN 'stream_type' THEN r.stream_type
                              WHEN 'device_os' THEN r.device_os END
        FROM qoe_hourly_rollup AS r
        WHERE r.hour >= lower(qoe_range_hours(range_from, range_to))
          AND r.hour < upper(qoe_range_hours(range_from, range_to))
          AND NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
          AND qoe_selected(r.app_name, apps)
        UNION
        -- ... which come from `sessions`, like the partial hours at both ends
        SELECT CASE dimension WHEN 'app_name' THEN f.app_name
                              WHEN 'app_version' THEN f.app_version
                              WHEN 'stream_type' THEN f.stream_type
                              WHEN 'device_os' THEN f.device_os END
        FROM (SELECT range_from,
                     coalesce(lower(qoe_range_hours(range_from, range_to)),
                              range_to + interval '1 microsecond')
              UNION ALL
              SELECT upper(qoe_range_hours(range_from, range_to)),
                     range_to + interval '1 microsecond'
              UNION ALL
              SELECT DISTINCT d.hour, d.hour + interval '1 hour'
              FROM qoe_rollup_dirty_hours AS d
              WHERE d.hour >= lower(qoe_range_hours(range_from, range_to))
                AND d.hour < upper(qoe_range_hours(range_from, range_to))) AS piece (lo, hi)
        JOIN qoe_session_facts AS f ON f.ended_at >= piece.lo AND f.ended_at < piece.hi
        WHERE qoe_selected(f.app_name, apps)
    ) AS v (value)
    WHERE v.value IS NOT NULL
    ORDER BY 1
$$;

GRANT SELECT ON qoe_session_facts TO m3w_dashboards, m3w_ingest;

CREATE VIEW qoe_hourly AS
WITH dirty AS MATERIALIZED (
    SELECT ARRAY(SELECT DISTINCT hour FROM qoe_rollup_dirty_hours) AS hours
)
SELECT r.*
FROM qoe_hourly_rollup AS r
WHERE NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
UNION ALL
SELECT a.* FROM dirty, qoe_hourly_aggregate(dirty.hours) AS a;

CREATE VIEW qoe_daily_breakdown AS
SELECT * FROM qoe_daily_breakdown_rollup;

GRANT SELECT ON qoe_hourly, qoe_daily_breakdown TO m3w_dashboards;

INSERT INTO qoe_rollup_dirty_hours (hour)
SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM sessions;
SELECT refresh_qoe_rollups();
DROP FUNCTION qoe_tenant_selected(integer, text[]);
