-- migrate:up
-- Dashboards exact for any picked range, from one definition per QoE metric (docs/grafana.md).
--
-- One definition per metric, in three layers:
--   qoe_session_facts   view: what one session contributes to each metric (failed, EBVS,
--                       startup score, smoothness, watch time, startup bucket, ...)
--   qoe_sessions_sums() the sums of those facts over sessions in [lo, hi), per period
--                       (and per dimension / breakdown value when asked); the rollups and
--                       the partial edges of a range are both made by it
--   qoe_metrics()       the metrics (rates, means, percentiles) from such sums
-- and three functions the panels and alert rules call with Grafana's range and variables:
--   qoe_overview()          stats (one row) or series (one row per $__interval bucket)
--   qoe_breakdown()         the worst-of tables
--   qoe_dimension_values()  the values a dimension variable offers
--
-- A range [from, to] (inclusive, as Grafana's $__timeFilter) is read as: whole UTC days from
-- qoe_daily_breakdown_rollup (breakdowns), whole UTC hours from the hourly rollups, and the
-- partial hours at either end from `sessions` by an index range scan on ended_at. Hours
-- written since the last refresh (qoe_rollup_dirty_hours) are corrected on the fly: what the
-- rollups hold for such an hour is subtracted and what `sessions` holds is added, so every
-- number is exact at every moment; the refresh only keeps it fast.
--
-- The daily breakdown rollup is now the sum of a new hourly breakdown rollup (so a dirty
-- hour can be subtracted from its day), and this migration backfills every rollup from the
-- sessions already stored (databases upgraded with data showed no history before).

-- The startup histogram's bucket bounds as a constant (the same values as the formula in
-- 20261125130000_add_qoe_rollups.sql: 100 ms x 2^(k/6), k = 0..60): a function with a FROM
-- clause is evaluated each time a query naming it is planned, which took most of a
-- dashboard query's planning time; a constant is inlined.
CREATE OR REPLACE FUNCTION startup_histogram_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{100, 112.2462048309373, 125.99210498948732, 141.4213562373095, 158.74010519681994,
      178.17974362806785, 200, 224.4924096618746, 251.98420997897463, 282.842712474619,
      317.4802103936399, 356.3594872561357, 400, 448.9848193237492, 503.96841995794927,
      565.685424949238, 634.9604207872798, 712.7189745122714, 800, 897.9696386474984,
      1007.9368399158985, 1131.370849898476, 1269.9208415745595, 1425.4379490245428, 1600,
      1795.9392772949968, 2015.873679831797, 2262.741699796952, 2539.841683149119,
      2850.8758980490857, 3200, 3591.8785545899937, 4031.747359663594, 4525.483399593904,
      5079.683366298238, 5701.751796098171, 6400, 7183.757109179987, 8063.494719327188,
      9050.966799187809, 10159.366732596476, 11403.503592196343, 12800, 14367.514218359975,
      16126.989438654376, 18101.933598375617, 20318.733465192952, 22807.007184392685, 25600,
      28735.02843671995, 32253.978877308753, 36203.867196751235, 40637.466930385905,
      45614.01436878537, 51200, 57470.0568734399, 64507.957754617506, 72407.73439350247,
      81274.93386077181, 91228.02873757074, 102400}'::double precision[]
$$;

-- startup_histogram_of(bucket, n) is n times a constant per bucket. Building it from a
-- 620-digit string at each call took most of the time of aggregating sessions on the fly
-- (measured 2.4x slower), so the 62 constants are computed once, here, by the function's
-- own definition: the values stay the same.
DO $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION startup_histogram_of(bucket integer, sessions bigint) '
        'RETURNS numeric LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS %L',
        format('SELECT sessions * (%L::numeric[])[bucket + 1]',
               (SELECT array_agg(startup_histogram_of(b, 1) ORDER BY b)
                FROM generate_series(0, 61) AS b)));
END
$$;

-- "All" is the custom value '*' (the dashboards' allValue); a NULL dimension is 'unknown'.
CREATE FUNCTION qoe_selected(value text, selection text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '*' = ANY (selection) OR value = ANY (selection)
$$;

-- The largest run of whole periods (aligned on the Unix epoch, i.e. UTC hours and days)
-- inside [range_from, range_end); empty when there is none.
CREATE FUNCTION qoe_whole_periods(range_from timestamptz, range_end timestamptz, period interval)
RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN date_bin(period, range_from - interval '1 microsecond',
                              timestamptz '1970-01-01Z') + period
                     < date_bin(period, range_end, timestamptz '1970-01-01Z')
                THEN tstzrange(date_bin(period, range_from - interval '1 microsecond',
                                        timestamptz '1970-01-01Z') + period,
                               date_bin(period, range_end, timestamptz '1970-01-01Z'))
                ELSE 'empty'::tstzrange END
$$;

-- What one session contributes to each metric (definitions: docs/grafana.md). Missing
-- values count as zero in sums; the dimensions are never NULL here.
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

-- The sums of the facts of the sessions with lo <= ended_at < hi that match the selection,
-- per period of `grain` (aligned on the epoch; NULL: one period, reported as NULL), per
-- (app, version, stream type, OS) when by_dimensions (else those are NULL), and per value
-- of the `breakdown` column when given (else value is NULL). A single SQL statement, so
-- PostgreSQL inlines it: the range reaches the ended_at index as an index range scan.
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

-- The metrics from sums (of qoe_sessions_sums or of rollup rows). NULL where the
-- denominator is zero (no session, nothing started, no watch time).
CREATE FUNCTION qoe_metrics(
    sum_sessions numeric, sum_failed numeric, sum_started numeric, sum_rebuffer_ms numeric,
    sum_watch_ms numeric, histogram numeric, sum_ebvs numeric DEFAULT NULL,
    sum_startup_score double precision DEFAULT NULL,
    sum_smoothness_score double precision DEFAULT NULL, sum_scored numeric DEFAULT NULL,
    sum_success_score numeric DEFAULT NULL, sum_rebuffer_count numeric DEFAULT NULL,
    sum_play_ms numeric DEFAULT NULL, sum_dropped_frames numeric DEFAULT NULL,
    sum_bitrate numeric DEFAULT NULL, sum_bitrate_sessions numeric DEFAULT NULL)
RETURNS TABLE (
    sessions bigint, started_sessions bigint, failure_rate double precision,
    ebvs_rate double precision, startup_p50 double precision, startup_p95 double precision,
    startup_p99 double precision, rebuffer_pct double precision,
    rebuffers_per_minute double precision, mean_bitrate double precision,
    dropped_frames_per_minute double precision, dropped_frames bigint,
    startup_score double precision, smoothness_score double precision,
    success_score double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sum_sessions::bigint,
           sum_started::bigint,
           (100.0 * sum_failed / nullif(sum_sessions, 0))::double precision,
           (100.0 * sum_ebvs / nullif(sum_sessions, 0))::double precision,
           startup_quantile(histogram, 0.5),
           startup_quantile(histogram, 0.95),
           startup_quantile(histogram, 0.99),
           -- rebuffer time over watch time (play + rebuffer), not a mean of ratios
           (100.0 * sum_rebuffer_ms / nullif(sum_watch_ms, 0))::double precision,
           (sum_rebuffer_count / nullif(sum_watch_ms / 60000.0, 0))::double precision,
           (sum_bitrate / nullif(sum_bitrate_sessions, 0))::double precision,
           (sum_dropped_frames / nullif(sum_play_ms / 60000.0, 0))::double precision,
           sum_dropped_frames::bigint,
           sum_startup_score / nullif(sum_started, 0)::double precision,
           sum_smoothness_score / nullif(sum_started, 0)::double precision,
           (sum_success_score / nullif(sum_scored, 0))::double precision
$$;

-- Every rollup is made by qoe_sessions_sums now (same signatures and sums as before; the
-- floating-point score sums may differ in their last digits).
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

-- Breakdowns per UTC hour: the partial days at the ends of a range read whole hours here,
-- and the daily rollup is the sum of these rows, so a dirty hour can be taken out of it.
CREATE TABLE qoe_hourly_breakdown_rollup (
    LIKE qoe_daily_breakdown_rollup INCLUDING ALL
);
ALTER TABLE qoe_hourly_breakdown_rollup RENAME COLUMN day TO hour;

CREATE FUNCTION qoe_hourly_breakdown_aggregate(hours timestamptz[], breakdown text)
RETURNS SETOF qoe_hourly_breakdown_rollup
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT h.hour, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}') AS a
$$;

-- Add (sign 1) or take out (sign -1) the hourly breakdown rows of `hours` to or from their
-- days' rows: the daily rollup stays the sum of the hourly one at a cost proportional to
-- the hours changed, not to their whole days.
CREATE FUNCTION qoe_add_hours_to_days(hours timestamptz[], sign integer) RETURNS void
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

-- Recompute every dirty hour, and move its days' rows along (so a day is always the sum of
-- its hours, which the on-the-fly correction relies on); returns how many hours it
-- recomputed (0 when another refresh holds the lock). Safe to call at any time,
-- concurrently with writes: a dirty row deleted here was committed together with its
-- sessions, so the later statements, which take newer snapshots, see those sessions; a row
-- committed after the DELETE stays for the next run (and until then the dashboards correct
-- that hour on the fly, whatever the rollups hold for it).
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

CREATE OR REPLACE FUNCTION clear_qoe_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup,
             qoe_rollup_dirty_hours;
    RETURN NULL;
END
$$;

-- The whole UTC hours inside [range_from, range_to], and the whole UTC days inside those.
CREATE FUNCTION qoe_range_hours(range_from timestamptz, range_to timestamptz)
RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT qoe_whole_periods(range_from, range_to + interval '1 microsecond', interval '1 hour')
$$;

CREATE FUNCTION qoe_range_days(range_from timestamptz, range_to timestamptz)
RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT qoe_whole_periods(lower(qoe_range_hours(range_from, range_to)),
                             upper(qoe_range_hours(range_from, range_to)), interval '1 day')
$$;

-- The QoE overview over [range_from, range_to] (both included, as $__timeFilter): one row
-- when bucket_ms is NULL (a stat; also over no session at all), else one row per bucket of
-- bucket_ms milliseconds aligned on the epoch (as $__timeGroup), for buckets with sessions.
-- Whole hours come from the hourly rollup when each bucket is made of whole hours, except
-- those written since the last refresh; everything else from `sessions` by index range scans.
-- Written without CTEs so that, inlined into a panel's query, every bound is a constant.
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

-- Which breakdown rollup rows serve a selection: the totals when every filter is "All".
CREATE FUNCTION qoe_breakdown_rows(
    breakdown text, apps text[], versions text[], streams text[], oses text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN '*' = ANY (apps) AND '*' = ANY (versions) AND '*' = ANY (streams)
                     AND '*' = ANY (oses)
                THEN breakdown || ' total' ELSE breakdown END
$$;

-- One breakdown (app_version, device_model, device_os_version or content_id) over
-- [range_from, range_to]: sessions, startup p95, rebuffer percentage and failure rate per
-- value (per app and version for app_version). Whole days from the daily rollup, the other
-- whole hours from the hourly breakdown rollup, the partial hours from `sessions`; for each
-- whole hour written since the last refresh, its rollup rows are subtracted and its
-- sessions added (the daily rollup is the sum of the hourly one, see refresh_qoe_rollups).
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

-- The values of one dimension (app_name, app_version, stream_type, device_os) among the
-- sessions in [range_from, range_to] of the selected apps, NULL as 'unknown', sorted.
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

GRANT SELECT ON qoe_session_facts, qoe_hourly_breakdown_rollup TO m3w_dashboards;
GRANT SELECT ON qoe_session_facts TO m3w_ingest;
GRANT SELECT, INSERT, DELETE ON qoe_hourly_breakdown_rollup TO m3w_ingest;
GRANT UPDATE ON qoe_daily_breakdown_rollup TO m3w_ingest;  -- qoe_add_hours_to_days()

-- Backfill: the rollup migration marked nothing dirty for sessions already stored, and the
-- hourly breakdown rollup is new. Every stored hour is recomputed (here if no refresh is
-- running; else by the next refresh: until then the dashboards read those hours from
-- `sessions`, exactly). The daily breakdown rows are rebuilt from the hourly ones.
TRUNCATE qoe_daily_breakdown_rollup;
INSERT INTO qoe_rollup_dirty_hours (hour)
SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM sessions;
SELECT refresh_qoe_rollups();

-- migrate:down
REVOKE ALL ON qoe_session_facts, qoe_hourly_breakdown_rollup FROM m3w_ingest, m3w_dashboards;
REVOKE UPDATE ON qoe_daily_breakdown_rollup FROM m3w_ingest;
DROP FUNCTION qoe_dimension_values(timestamptz, timestamptz, text, text[]);
DROP FUNCTION qoe_breakdown(timestamptz, timestamptz, text, text[], text[], text[], text[]);
DROP FUNCTION qoe_breakdown_rows(text, text[], text[], text[], text[]);
DROP FUNCTION qoe_overview(timestamptz, timestamptz, bigint, text[], text[], text[], text[]);
DROP FUNCTION qoe_range_days(timestamptz, timestamptz);
DROP FUNCTION qoe_range_hours(timestamptz, timestamptz);

CREATE OR REPLACE FUNCTION clear_qoe_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_daily_breakdown_rollup, qoe_rollup_dirty_hours;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION refresh_qoe_rollups() RETURNS integer
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

DROP FUNCTION qoe_add_hours_to_days(timestamptz[], integer);
DROP FUNCTION qoe_hourly_breakdown_aggregate(timestamptz[], text);
DROP TABLE qoe_hourly_breakdown_rollup;
DELETE FROM qoe_daily_breakdown_rollup WHERE dimension LIKE '% total';

CREATE OR REPLACE FUNCTION qoe_hourly_aggregate(hours timestamptz[]) RETURNS SETOF qoe_hourly_rollup
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

CREATE OR REPLACE FUNCTION qoe_daily_breakdown_aggregate(days timestamptz[], breakdown text)
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

DROP FUNCTION qoe_metrics(numeric, numeric, numeric, numeric, numeric, numeric, numeric,
    double precision, double precision, numeric, numeric, numeric, numeric, numeric, numeric,
    numeric);
DROP FUNCTION qoe_sessions_sums(timestamptz, timestamptz, interval, boolean, text, text[],
    text[], text[], text[]);
DROP VIEW qoe_session_facts;
DROP FUNCTION qoe_whole_periods(timestamptz, timestamptz, interval);
DROP FUNCTION qoe_selected(text, text[]);

CREATE OR REPLACE FUNCTION startup_histogram_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(100 * power(2, k / 6.0) ORDER BY k) FROM generate_series(0, 60) AS k
$$;

CREATE OR REPLACE FUNCTION startup_histogram_of(bucket integer, sessions bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (repeat(lpad(sessions::text, 10, '0'), 62 - bucket) || repeat('0', 10 * bucket))::numeric
$$;
