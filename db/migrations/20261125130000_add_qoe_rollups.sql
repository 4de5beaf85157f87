-- migrate:up
-- Rollups for the Grafana dashboards (docs/grafana.md). Raw `sessions` rows cannot serve a
-- 30-day dashboard over 10M sessions in under a second (bench/dashboards.py), so:
--
--   qoe_hourly_rollup           one row per UTC hour and (app, version, stream type, OS)
--   qoe_daily_breakdown_rollup  one row per UTC day, breakdown dimension and value
--
-- Writes only append to qoe_rollup_dirty_hours (one row per write statement and hour it
-- touched, from statement-level triggers: no per-row trigger, no lock shared between
-- writers). refresh_qoe_rollups() recomputes the dirty hours and days from `sessions`
-- (docker-compose.yml runs it every minute).
--
-- Freshness: the view qoe_hourly reads the rollup for clean hours and aggregates `sessions`
-- on the fly for dirty ones, so it is exact at every moment; the refresh only keeps it
-- fast. The view qoe_daily_breakdown is as fresh as the last refresh.
--
-- A session updated with a newer summary dirties both its old and its new hour, so it moves
-- between buckets correctly; deletes and TRUNCATE are handled too.

-- Startup-time histogram. Bucket 0 is [0, 100 ms); bucket k in 1..60 is
-- [100 ms * 2^((k-1)/6), 100 ms * 2^(k/6)) (six buckets per doubling, each 12% wide);
-- bucket 61 is 102.4 s and above. Percentiles read from it are exact to one bucket.
CREATE FUNCTION startup_histogram_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(100 * power(2, k / 6.0) ORDER BY k) FROM generate_series(0, 60) AS k
$$;

-- The histogram is one numeric holding cumulative counts, ten decimal digits per bucket:
-- digits 10k..10k+9 (from the right) count the sessions in buckets 0..k. So the built-in
-- sum() adds histograms bucket by bucket (measured 15x faster than summing int[] with
-- unnest()), and a quantile is a binary search over six buckets rather than a scan of 62.
-- Capacity: 10^10 sessions per summed histogram.
CREATE FUNCTION startup_histogram_of(bucket integer, sessions bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (repeat(lpad(sessions::text, 10, '0'), 62 - bucket) || repeat('0', 10 * bucket))::numeric
$$;

-- The q-quantile (0..1) of a summed histogram, interpolated linearly inside its bucket;
-- NULL when the histogram is empty. 102.4 s and above reads as 102.4 s.
CREATE FUNCTION startup_quantile(histogram numeric, q double precision)
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bounds constant double precision[] := startup_histogram_bounds();
    digits constant text := lpad(histogram::text, 620, '0');
    total constant bigint := left(digits, 10)::bigint;  -- bucket 61 counts everything
    rank constant double precision := q * total;
    bucket integer := 0;
    above integer := 61;
    middle integer;
    upto bigint;
    below bigint := 0;
    low double precision := 0;
BEGIN
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    -- The first bucket whose cumulative count reaches the rank (and holds a session).
    WHILE bucket < above LOOP
        middle := (bucket + above) / 2;
        IF substr(digits, 611 - 10 * middle, 10)::bigint >= greatest(rank, 1) THEN
            above := middle;
        ELSE
            bucket := middle + 1;
        END IF;
    END LOOP;
    upto := substr(digits, 611 - 10 * bucket, 10)::bigint;
    IF bucket > 0 THEN
        below := substr(digits, 621 - 10 * bucket, 10)::bigint;
        low := bounds[bucket];
    END IF;
    IF bucket = 61 THEN
        RETURN low;
    END IF;
    RETURN low + (bounds[bucket + 1] - low) * greatest(rank - below, 0) / (upto - below);
END
$$;

-- Dimension values are never NULL in rollups: NULL (e.g. every payload-A session) is
-- 'unknown', so Grafana's `col IN ($var)` and the "All" option see it like any value.
CREATE TABLE qoe_hourly_rollup (
    hour                 timestamptz NOT NULL,
    app_name             text NOT NULL,
    app_version          text NOT NULL,
    stream_type          text NOT NULL,
    device_os            text NOT NULL,
    sessions             bigint NOT NULL,
    failed_sessions      bigint NOT NULL,  -- error_count > 0
    ebvs_sessions        bigint NOT NULL,  -- never started, no fatal error
    started_sessions     bigint NOT NULL,  -- startup_time_ms known
    startup_ms_sum       bigint NOT NULL,
    startup_score_sum    double precision NOT NULL,  -- over started sessions
    smoothness_score_sum double precision NOT NULL,  -- over started sessions
    scored_sessions      bigint NOT NULL,  -- playback success: all but views under 1 s
    success_score_sum    bigint NOT NULL,
    rebuffer_ms_sum      bigint NOT NULL,
    watch_ms_sum         bigint NOT NULL,  -- play + rebuffer time
    rebuffer_count_sum   bigint NOT NULL,
    play_ms_sum          bigint NOT NULL,
    dropped_frames_sum   bigint NOT NULL,
    bitrate_sum          numeric NOT NULL,
    bitrate_sessions     bigint NOT NULL,
    startup_histogram    numeric NOT NULL,
    PRIMARY KEY (hour, app_name, app_version, stream_type, device_os)
);

CREATE TABLE qoe_daily_breakdown_rollup (
    day               timestamptz NOT NULL,
    dimension         text NOT NULL,  -- app_version, device_model, device_os_version, content_id
    value             text NOT NULL,
    app_name          text NOT NULL,
    app_version       text NOT NULL,
    stream_type       text NOT NULL,
    device_os         text NOT NULL,
    sessions          bigint NOT NULL,
    failed_sessions   bigint NOT NULL,
    started_sessions  bigint NOT NULL,
    rebuffer_ms_sum   bigint NOT NULL,
    watch_ms_sum      bigint NOT NULL,
    startup_histogram numeric NOT NULL,
    PRIMARY KEY (dimension, day, app_name, app_version, stream_type, device_os, value)
);

-- Append-only and unindexed on purpose: concurrent writers never wait on each other here.
CREATE TABLE qoe_rollup_dirty_hours (hour timestamptz NOT NULL);

-- Every measure of one hour, from `sessions`. Counted per startup bucket first, so the
-- numeric histogram is built once per group rather than once per session.
CREATE FUNCTION qoe_hourly_aggregate(hours timestamptz[]) RETURNS SETOF qoe_hourly_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT hour, app_name, app_version, stream_type, device_os,
           sum(sessions), sum(failed_sessions), sum(ebvs_sessions), sum(started_sessions),
           sum(startup_ms_sum), sum(startup_score_sum), sum(smoothness_score_sum),
           sum(scored_sessions), sum(success_score_sum), sum(rebuffer_ms_sum),
           sum(watch_ms_sum), sum(rebuffer_count_sum), sum(play_ms_sum),
           sum(dropped_frames_sum), sum(bitrate_sum), sum(bitrate_sessions),
           coalesce(sum(startup_histogram_of(startup_bucket, started_sessions)), 0)
    FROM (
        SELECT h.hour,
               coalesce(s.app_name, 'unknown') AS app_name,
               coalesce(s.app_version, 'unknown') AS app_version,
               coalesce(s.stream_type, 'unknown') AS stream_type,
               coalesce(s.device_os, 'unknown') AS device_os,
               width_bucket(s.startup_time_ms::double precision, startup_histogram_bounds())
                   AS startup_bucket,
               count(*) AS sessions,
               count(*) FILTER (WHERE s.error_count > 0) AS failed_sessions,
               count(*) FILTER (WHERE s.startup_time_ms IS NULL
                                  AND coalesce(s.error_count, 0) = 0) AS ebvs_sessions,
               count(s.startup_time_ms) AS started_sessions,
               coalesce(sum(s.startup_time_ms), 0) AS startup_ms_sum,
               coalesce(sum(800000.0 / (8000 + s.startup_time_ms)), 0) AS startup_score_sum,
               coalesce(sum(
                   (100 / sqrt(1 + (coalesce(s.rebuffer_count, 0) / 2.0) ^ 2)
                    + 100 * exp(-10 * CASE WHEN w.watch_ms > 0
                                           THEN coalesce(s.rebuffer_time_ms, 0)::float8
                                                / w.watch_ms
                                           ELSE 0 END)) / 2
               ) FILTER (WHERE s.startup_time_ms IS NOT NULL), 0) AS smoothness_score_sum,
               count(*) FILTER (WHERE coalesce(s.session_duration_ms, 1000) >= 1000)
                   AS scored_sessions,
               coalesce(sum(CASE WHEN s.error_count > 0 THEN 0
                                 WHEN s.startup_time_ms IS NULL THEN 50
                                 ELSE 100 END)
                        FILTER (WHERE coalesce(s.session_duration_ms, 1000) >= 1000), 0)
                   AS success_score_sum,
               coalesce(sum(s.rebuffer_time_ms), 0) AS rebuffer_ms_sum,
               sum(w.watch_ms) AS watch_ms_sum,
               coalesce(sum(s.rebuffer_count), 0) AS rebuffer_count_sum,
               coalesce(sum(s.play_time_ms), 0) AS play_ms_sum,
               coalesce(sum(s.total_dropped_frames), 0) AS dropped_frames_sum,
               coalesce(sum(s.mean_video_format_bitrate), 0) AS bitrate_sum,
               count(s.mean_video_format_bitrate) AS bitrate_sessions
        FROM unnest(hours) AS h (hour)
        JOIN sessions AS s ON s.ended_at >= h.hour AND s.ended_at < h.hour + interval '1 hour'
        CROSS JOIN LATERAL (
            SELECT coalesce(s.play_time_ms, 0) + coalesce(s.rebuffer_time_ms, 0) AS watch_ms
        ) AS w
        GROUP BY 1, 2, 3, 4, 5, 6
    ) AS per_bucket
    GROUP BY 1, 2, 3, 4, 5
$$;

-- One breakdown dimension over whole UTC days, from `sessions`.
CREATE FUNCTION qoe_daily_breakdown_aggregate(days timestamptz[], breakdown text)
RETURNS SETOF qoe_daily_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT day, breakdown, value, app_name, app_version, stream_type, device_os,
           sum(sessions), sum(failed_sessions), sum(started_sessions), sum(rebuffer_ms_sum),
           sum(watch_ms_sum),
           coalesce(sum(startup_histogram_of(startup_bucket, started_sessions)), 0)
    FROM (
        SELECT d.day,
               coalesce(CASE breakdown
                            WHEN 'app_version' THEN s.app_version
                            WHEN 'device_model' THEN s.device_model
                            WHEN 'device_os_version' THEN s.device_os_version
                            WHEN 'content_id' THEN s.content_id
                        END, 'unknown') AS value,
               coalesce(s.app_name, 'unknown') AS app_name,
               coalesce(s.app_version, 'unknown') AS app_version,
               coalesce(s.stream_type, 'unknown') AS stream_type,
               coalesce(s.device_os, 'unknown') AS device_os,
               width_bucket(s.startup_time_ms::double precision, startup_histogram_bounds())
                   AS startup_bucket,
               count(*) AS sessions,
               count(*) FILTER (WHERE s.error_count > 0) AS failed_sessions,
               count(s.startup_time_ms) AS started_sessions,
               coalesce(sum(s.rebuffer_time_ms), 0) AS rebuffer_ms_sum,
               sum(coalesce(s.play_time_ms, 0) + coalesce(s.rebuffer_time_ms, 0))
                   AS watch_ms_sum
        FROM unnest(days) AS d (day)
        JOIN sessions AS s ON s.ended_at >= d.day AND s.ended_at < d.day + interval '24 hours'
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ) AS per_bucket
    GROUP BY 1, 2, 3, 4, 5, 6, 7
$$;

-- The dirty hours go to the aggregate as a column, not a subquery, so PostgreSQL inlines
-- the function: the range filter reaches the hours and `sessions` is read by index, hour
-- by hour (a subquery argument blocks inlining; the generic plan scanned the whole table).
CREATE VIEW qoe_hourly AS
WITH dirty AS MATERIALIZED (
    SELECT ARRAY(SELECT DISTINCT hour FROM qoe_rollup_dirty_hours) AS hours
)
SELECT r.*
FROM qoe_hourly_rollup AS r
WHERE NOT EXISTS (SELECT FROM qoe_rollup_dirty_hours AS d WHERE d.hour = r.hour)
UNION ALL
SELECT a.* FROM dirty, qoe_hourly_aggregate(dirty.hours) AS a;

-- Breakdowns over whole days read the rollup as of the last refresh: falling back to
-- `sessions` here would recompute a whole day for one late session. (Ranges under 3 days
-- are read from `sessions` by the dashboard itself.)
CREATE VIEW qoe_daily_breakdown AS
SELECT * FROM qoe_daily_breakdown_rollup;

-- Recompute every dirty hour and day; returns how many hours it recomputed (0 when another
-- refresh holds the lock). Safe to call at any time and from anywhere, e.g. every minute.
-- Correct without a snapshot trick: a dirty row deleted here was committed together with its
-- sessions, so the later statements, which take newer snapshots, see those sessions; a row
-- committed after the DELETE stays for the next run.
CREATE FUNCTION refresh_qoe_rollups() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    hours timestamptz[];
    days timestamptz[];
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

    days := ARRAY(SELECT DISTINCT date_trunc('day', h, 'UTC') FROM unnest(hours) AS h);
    DELETE FROM qoe_daily_breakdown_rollup WHERE day = ANY (days);
    FOREACH breakdown IN ARRAY ARRAY['app_version', 'device_model', 'device_os_version',
                                     'content_id'] LOOP
        INSERT INTO qoe_daily_breakdown_rollup
        SELECT * FROM qoe_daily_breakdown_aggregate(days, breakdown);
    END LOOP;
    RETURN cardinality(hours);
END
$$;

CREATE FUNCTION mark_qoe_rollups_dirty() RETURNS trigger
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

CREATE TRIGGER sessions_mark_rollups_dirty_on_insert
AFTER INSERT ON sessions REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION mark_qoe_rollups_dirty();

CREATE TRIGGER sessions_mark_rollups_dirty_on_update
AFTER UPDATE ON sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION mark_qoe_rollups_dirty();

CREATE TRIGGER sessions_mark_rollups_dirty_on_delete
AFTER DELETE ON sessions REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION mark_qoe_rollups_dirty();

CREATE FUNCTION clear_qoe_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_daily_breakdown_rollup, qoe_rollup_dirty_hours;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_clear_rollups_on_truncate
AFTER TRUNCATE ON sessions
FOR EACH STATEMENT EXECUTE FUNCTION clear_qoe_rollups();

-- migrate:down
DROP TRIGGER sessions_clear_rollups_on_truncate ON sessions;
DROP TRIGGER sessions_mark_rollups_dirty_on_delete ON sessions;
DROP TRIGGER sessions_mark_rollups_dirty_on_update ON sessions;
DROP TRIGGER sessions_mark_rollups_dirty_on_insert ON sessions;
DROP FUNCTION clear_qoe_rollups();
DROP FUNCTION mark_qoe_rollups_dirty();
DROP FUNCTION refresh_qoe_rollups();
DROP VIEW qoe_daily_breakdown;
DROP VIEW qoe_hourly;
DROP FUNCTION qoe_daily_breakdown_aggregate(timestamptz[], text);
DROP FUNCTION qoe_hourly_aggregate(timestamptz[]);
DROP TABLE qoe_rollup_dirty_hours;
DROP TABLE qoe_daily_breakdown_rollup;
DROP TABLE qoe_hourly_rollup;
DROP FUNCTION startup_quantile(numeric, double precision);
DROP FUNCTION startup_histogram_of(integer, bigint);
DROP FUNCTION startup_histogram_bounds();
