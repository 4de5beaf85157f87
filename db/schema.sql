\restrict dbmate

-- Dumped from database version 18.6
-- Dumped by pg_dump version 18.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: clear_qoe_rollups(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.clear_qoe_rollups() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    TRUNCATE qoe_hourly_rollup, qoe_daily_breakdown_rollup, qoe_rollup_dirty_hours;
    RETURN NULL;
END
$$;


--
-- Name: mark_qoe_rollups_dirty(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.mark_qoe_rollups_dirty() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: qoe_daily_breakdown_rollup; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.qoe_daily_breakdown_rollup (
    day timestamp with time zone NOT NULL,
    dimension text NOT NULL,
    value text NOT NULL,
    app_name text NOT NULL,
    app_version text NOT NULL,
    stream_type text NOT NULL,
    device_os text NOT NULL,
    sessions bigint NOT NULL,
    failed_sessions bigint NOT NULL,
    started_sessions bigint NOT NULL,
    rebuffer_ms_sum bigint NOT NULL,
    watch_ms_sum bigint NOT NULL,
    startup_histogram numeric NOT NULL
);


--
-- Name: qoe_daily_breakdown_aggregate(timestamp with time zone[], text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_daily_breakdown_aggregate(days timestamp with time zone[], breakdown text) RETURNS SETOF public.qoe_daily_breakdown_rollup
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
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


--
-- Name: qoe_hourly_rollup; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.qoe_hourly_rollup (
    hour timestamp with time zone NOT NULL,
    app_name text NOT NULL,
    app_version text NOT NULL,
    stream_type text NOT NULL,
    device_os text NOT NULL,
    sessions bigint NOT NULL,
    failed_sessions bigint NOT NULL,
    ebvs_sessions bigint NOT NULL,
    started_sessions bigint NOT NULL,
    startup_ms_sum bigint NOT NULL,
    startup_score_sum double precision NOT NULL,
    smoothness_score_sum double precision NOT NULL,
    scored_sessions bigint NOT NULL,
    success_score_sum bigint NOT NULL,
    rebuffer_ms_sum bigint NOT NULL,
    watch_ms_sum bigint NOT NULL,
    rebuffer_count_sum bigint NOT NULL,
    play_ms_sum bigint NOT NULL,
    dropped_frames_sum bigint NOT NULL,
    bitrate_sum numeric NOT NULL,
    bitrate_sessions bigint NOT NULL,
    startup_histogram numeric NOT NULL
);


--
-- Name: qoe_hourly_aggregate(timestamp with time zone[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_hourly_aggregate(hours timestamp with time zone[]) RETURNS SETOF public.qoe_hourly_rollup
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
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


--
-- Name: refresh_qoe_rollups(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refresh_qoe_rollups() RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: startup_histogram_bounds(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.startup_histogram_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT array_agg(100 * power(2, k / 6.0) ORDER BY k) FROM generate_series(0, 60) AS k
$$;


--
-- Name: startup_histogram_of(integer, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.startup_histogram_of(bucket integer, sessions bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT (repeat(lpad(sessions::text, 10, '0'), 62 - bucket) || repeat('0', 10 * bucket))::numeric
$$;


--
-- Name: startup_quantile(numeric, double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.startup_quantile(histogram numeric, q double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
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


--
-- Name: qoe_daily_breakdown; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.qoe_daily_breakdown AS
 SELECT day,
    dimension,
    value,
    app_name,
    app_version,
    stream_type,
    device_os,
    sessions,
    failed_sessions,
    started_sessions,
    rebuffer_ms_sum,
    watch_ms_sum,
    startup_histogram
   FROM public.qoe_daily_breakdown_rollup;


--
-- Name: qoe_rollup_dirty_hours; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.qoe_rollup_dirty_hours (
    hour timestamp with time zone NOT NULL
);


--
-- Name: qoe_hourly; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.qoe_hourly AS
 WITH dirty AS MATERIALIZED (
         SELECT ARRAY( SELECT DISTINCT qoe_rollup_dirty_hours.hour
                   FROM public.qoe_rollup_dirty_hours) AS hours
        )
 SELECT r.hour,
    r.app_name,
    r.app_version,
    r.stream_type,
    r.device_os,
    r.sessions,
    r.failed_sessions,
    r.ebvs_sessions,
    r.started_sessions,
    r.startup_ms_sum,
    r.startup_score_sum,
    r.smoothness_score_sum,
    r.scored_sessions,
    r.success_score_sum,
    r.rebuffer_ms_sum,
    r.watch_ms_sum,
    r.rebuffer_count_sum,
    r.play_ms_sum,
    r.dropped_frames_sum,
    r.bitrate_sum,
    r.bitrate_sessions,
    r.startup_histogram
   FROM public.qoe_hourly_rollup r
  WHERE (NOT (EXISTS ( SELECT
           FROM public.qoe_rollup_dirty_hours d
          WHERE (d.hour = r.hour))))
UNION ALL
 SELECT a.hour,
    a.app_name,
    a.app_version,
    a.stream_type,
    a.device_os,
    a.sessions,
    a.failed_sessions,
    a.ebvs_sessions,
    a.started_sessions,
    a.startup_ms_sum,
    a.startup_score_sum,
    a.smoothness_score_sum,
    a.scored_sessions,
    a.success_score_sum,
    a.rebuffer_ms_sum,
    a.watch_ms_sum,
    a.rebuffer_count_sum,
    a.play_ms_sum,
    a.dropped_frames_sum,
    a.bitrate_sum,
    a.bitrate_sessions,
    a.startup_histogram
   FROM dirty,
    LATERAL public.qoe_hourly_aggregate(dirty.hours) a(hour, app_name, app_version, stream_type, device_os, sessions, failed_sessions, ebvs_sessions, started_sessions, startup_ms_sum, startup_score_sum, smoothness_score_sum, scored_sessions, success_score_sum, rebuffer_ms_sum, watch_ms_sum, rebuffer_count_sum, play_ms_sum, dropped_frames_sum, bitrate_sum, bitrate_sessions, startup_histogram);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sessions (
    session_id text NOT NULL,
    "timestamp" bigint NOT NULL,
    ended_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    schema_version text,
    session_duration_ms bigint,
    startup_time_ms bigint,
    rebuffer_time_ms bigint,
    rebuffer_count integer,
    play_time_ms bigint,
    rebuffer_ratio double precision,
    total_dropped_frames bigint,
    total_seek_count integer,
    total_seek_time_ms bigint,
    mean_video_format_bitrate bigint,
    error_count integer,
    last_error_code integer,
    last_error_category text,
    quality_switch_count integer,
    content_id text,
    stream_type text,
    device_model text,
    device_os text,
    device_os_version text,
    app_name text,
    app_version text,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT sessions_session_id_check CHECK (((length(session_id) >= 1) AND (length(session_id) <= 128))),
    CONSTRAINT sessions_timestamp_check CHECK (("timestamp" > 0))
);


--
-- Name: qoe_daily_breakdown_rollup qoe_daily_breakdown_rollup_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_daily_breakdown_rollup
    ADD CONSTRAINT qoe_daily_breakdown_rollup_pkey PRIMARY KEY (dimension, day, app_name, app_version, stream_type, device_os, value);


--
-- Name: qoe_hourly_rollup qoe_hourly_rollup_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_hourly_rollup
    ADD CONSTRAINT qoe_hourly_rollup_pkey PRIMARY KEY (hour, app_name, app_version, stream_type, device_os);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (session_id);


--
-- Name: sessions_ended_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_ended_at_idx ON public.sessions USING btree (ended_at);


--
-- Name: sessions_started_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_started_at_idx ON public.sessions USING btree (started_at);


--
-- Name: sessions sessions_clear_rollups_on_truncate; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessions_clear_rollups_on_truncate AFTER TRUNCATE ON public.sessions FOR EACH STATEMENT EXECUTE FUNCTION public.clear_qoe_rollups();


--
-- Name: sessions sessions_mark_rollups_dirty_on_delete; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessions_mark_rollups_dirty_on_delete AFTER DELETE ON public.sessions REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.mark_qoe_rollups_dirty();


--
-- Name: sessions sessions_mark_rollups_dirty_on_insert; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessions_mark_rollups_dirty_on_insert AFTER INSERT ON public.sessions REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.mark_qoe_rollups_dirty();


--
-- Name: sessions sessions_mark_rollups_dirty_on_update; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER sessions_mark_rollups_dirty_on_update AFTER UPDATE ON public.sessions REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.mark_qoe_rollups_dirty();


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125120000'),
    ('20261125130000');
