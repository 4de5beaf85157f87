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
    TRUNCATE qoe_hourly_rollup, qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup,
             qoe_rollup_dirty_hours, qoe_pruned_before;
    RETURN NULL;
END
$$;


--
-- Name: grant_tenant_read(text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.grant_tenant_read(slug text, password_verifier text) RETURNS name
    LANGUAGE plpgsql
    AS $_$
DECLARE
    tenant integer;
    role name;
BEGIN
    SELECT t.id INTO tenant FROM tenants AS t WHERE t.slug = grant_tenant_read.slug;
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant %', slug USING ERRCODE = 'no_data_found';
    END IF;
    IF password_verifier NOT LIKE 'SCRAM-SHA-256$%' THEN
        RAISE EXCEPTION 'the password must be a SCRAM-SHA-256 verifier';
    END IF;
    role := 'm3w_read_' || replace(slug, '-', '_');
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = role)
       AND NOT EXISTS (SELECT FROM tenant_read_roles AS m WHERE m.role_name = role) THEN
        -- not ours: never turn an unrelated role into a tenant reader
        RAISE EXCEPTION 'role % exists and is not a tenant read role', role;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) THEN
        EXECUTE format('CREATE ROLE %I', role);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                   'NOBYPASSRLS NOINHERIT PASSWORD %L', role, password_verifier);
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', role);
    INSERT INTO tenant_read_roles (role_name, tenant_id) VALUES (role, tenant)
    ON CONFLICT (role_name) DO UPDATE SET tenant_id = EXCLUDED.tenant_id;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role);
    EXECUTE format('GRANT SELECT ON sessions, tenants, qoe_hourly_rollup, '
                   'qoe_hourly_breakdown_rollup, qoe_daily_breakdown_rollup, '
                   'qoe_rollup_dirty_hours, qoe_session_facts, qoe_hourly, '
                   'qoe_daily_breakdown TO %I', role);
    RETURN role;
END
$_$;


--
-- Name: m3w_written_in_time(bigint, double precision); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.m3w_written_in_time(written bigint, commit_by double precision) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF extract(epoch FROM clock_timestamp()) >= commit_by THEN
        RAISE EXCEPTION 'media3watch: the service stopped waiting for this commit'
            USING ERRCODE = 'query_canceled';
    END IF;
    RETURN written;
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


--
-- Name: prune_qoe_rollups_batch(timestamp with time zone, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.prune_qoe_rollups_batch(cutoff timestamp with time zone, batch_size integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: prune_sessions_batch(integer, timestamp with time zone, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.prune_sessions_batch(tenant integer, cutoff timestamp with time zone, batch_size integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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


--
-- Name: qoe_add_hours_to_days(timestamp with time zone[], integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_add_hours_to_days(hours timestamp with time zone[], sign integer) RETURNS void
    LANGUAGE sql
    AS $$
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


--
-- Name: qoe_breakdown(timestamp with time zone, timestamp with time zone, text, text[], text[], text[], text[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_breakdown(range_from timestamp with time zone, range_to timestamp with time zone, breakdown text, apps text[], versions text[], streams text[], oses text[], tenants text[] DEFAULT NULL::text[]) RETURNS TABLE(app_name text, value text, sessions bigint, startup_p95 double precision, rebuffer_pct double precision, failure_rate double precision)
    LANGUAGE sql STABLE
    AS $$
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


--
-- Name: qoe_breakdown_rows(text, text[], text[], text[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_breakdown_rows(breakdown text, apps text[], versions text[], streams text[], oses text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN '*' = ANY (apps) AND '*' = ANY (versions) AND '*' = ANY (streams)
                     AND '*' = ANY (oses)
                THEN breakdown || ' total' ELSE breakdown END
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
    startup_histogram numeric NOT NULL,
    tenant_id integer NOT NULL
);


--
-- Name: qoe_daily_breakdown_aggregate(timestamp with time zone[], text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_daily_breakdown_aggregate(days timestamp with time zone[], breakdown text) RETURNS SETOF public.qoe_daily_breakdown_rollup
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d.day, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram, a.tenant_id
    FROM unnest(days) AS d (day)
    CROSS JOIN LATERAL qoe_sessions_sums(d.day, d.day + interval '24 hours', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;


--
-- Name: qoe_dimension_values(timestamp with time zone, timestamp with time zone, text, text[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_dimension_values(range_from timestamp with time zone, range_to timestamp with time zone, dimension text, apps text[], tenants text[] DEFAULT NULL::text[]) RETURNS SETOF text
    LANGUAGE sql STABLE
    AS $$
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
    startup_histogram numeric NOT NULL,
    tenant_id integer NOT NULL
);


--
-- Name: qoe_hourly_aggregate(timestamp with time zone[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_hourly_aggregate(hours timestamp with time zone[]) RETURNS SETOF public.qoe_hourly_rollup
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT h.hour, a.app_name, a.app_version, a.stream_type, a.device_os, a.sessions,
           a.failed_sessions, a.ebvs_sessions, a.started_sessions, a.startup_ms_sum,
           a.startup_score_sum, a.smoothness_score_sum, a.scored_sessions, a.success_score_sum,
           a.rebuffer_ms_sum, a.watch_ms_sum, a.rebuffer_count_sum, a.play_ms_sum,
           a.dropped_frames_sum, a.bitrate_sum, a.bitrate_sessions, a.startup_histogram, a.tenant_id
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true, NULL,
                                         '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;


--
-- Name: qoe_hourly_breakdown_rollup; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.qoe_hourly_breakdown_rollup (
    hour timestamp with time zone CONSTRAINT qoe_daily_breakdown_rollup_day_not_null NOT NULL,
    dimension text CONSTRAINT qoe_daily_breakdown_rollup_dimension_not_null NOT NULL,
    value text CONSTRAINT qoe_daily_breakdown_rollup_value_not_null NOT NULL,
    app_name text CONSTRAINT qoe_daily_breakdown_rollup_app_name_not_null NOT NULL,
    app_version text CONSTRAINT qoe_daily_breakdown_rollup_app_version_not_null NOT NULL,
    stream_type text CONSTRAINT qoe_daily_breakdown_rollup_stream_type_not_null NOT NULL,
    device_os text CONSTRAINT qoe_daily_breakdown_rollup_device_os_not_null NOT NULL,
    sessions bigint CONSTRAINT qoe_daily_breakdown_rollup_sessions_not_null NOT NULL,
    failed_sessions bigint CONSTRAINT qoe_daily_breakdown_rollup_failed_sessions_not_null NOT NULL,
    started_sessions bigint CONSTRAINT qoe_daily_breakdown_rollup_started_sessions_not_null NOT NULL,
    rebuffer_ms_sum bigint CONSTRAINT qoe_daily_breakdown_rollup_rebuffer_ms_sum_not_null NOT NULL,
    watch_ms_sum bigint CONSTRAINT qoe_daily_breakdown_rollup_watch_ms_sum_not_null NOT NULL,
    startup_histogram numeric CONSTRAINT qoe_daily_breakdown_rollup_startup_histogram_not_null NOT NULL,
    tenant_id integer NOT NULL
);


--
-- Name: qoe_hourly_breakdown_aggregate(timestamp with time zone[], text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_hourly_breakdown_aggregate(hours timestamp with time zone[], breakdown text) RETURNS SETOF public.qoe_hourly_breakdown_rollup
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT h.hour, breakdown, a.value, a.app_name, a.app_version, a.stream_type, a.device_os,
           a.sessions, a.failed_sessions, a.started_sessions, a.rebuffer_ms_sum,
           a.watch_ms_sum, a.startup_histogram, a.tenant_id
    FROM unnest(hours) AS h (hour)
    CROSS JOIN LATERAL qoe_sessions_sums(h.hour, h.hour + interval '1 hour', NULL, true,
                                         breakdown, '{*}', '{*}', '{*}', '{*}', NULL) AS a
$$;


--
-- Name: qoe_metrics(numeric, numeric, numeric, numeric, numeric, numeric, numeric, double precision, double precision, numeric, numeric, numeric, numeric, numeric, numeric, numeric); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_metrics(sum_sessions numeric, sum_failed numeric, sum_started numeric, sum_rebuffer_ms numeric, sum_watch_ms numeric, histogram numeric, sum_ebvs numeric DEFAULT NULL::numeric, sum_startup_score double precision DEFAULT NULL::double precision, sum_smoothness_score double precision DEFAULT NULL::double precision, sum_scored numeric DEFAULT NULL::numeric, sum_success_score numeric DEFAULT NULL::numeric, sum_rebuffer_count numeric DEFAULT NULL::numeric, sum_play_ms numeric DEFAULT NULL::numeric, sum_dropped_frames numeric DEFAULT NULL::numeric, sum_bitrate numeric DEFAULT NULL::numeric, sum_bitrate_sessions numeric DEFAULT NULL::numeric) RETURNS TABLE(sessions bigint, started_sessions bigint, failure_rate double precision, ebvs_rate double precision, startup_p50 double precision, startup_p95 double precision, startup_p99 double precision, rebuffer_pct double precision, rebuffers_per_minute double precision, mean_bitrate double precision, dropped_frames_per_minute double precision, dropped_frames bigint, startup_score double precision, smoothness_score double precision, success_score double precision)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
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


--
-- Name: qoe_overview(timestamp with time zone, timestamp with time zone, bigint, text[], text[], text[], text[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_overview(range_from timestamp with time zone, range_to timestamp with time zone, bucket_ms bigint, apps text[], versions text[], streams text[], oses text[], tenants text[] DEFAULT NULL::text[]) RETURNS TABLE("time" timestamp with time zone, sessions bigint, started_sessions bigint, failure_rate double precision, ebvs_rate double precision, startup_p50 double precision, startup_p95 double precision, startup_p99 double precision, rebuffer_pct double precision, rebuffers_per_minute double precision, mean_bitrate double precision, dropped_frames_per_minute double precision, dropped_frames bigint, startup_score double precision, smoothness_score double precision, success_score double precision)
    LANGUAGE sql STABLE
    AS $$
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


--
-- Name: qoe_range_days(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_range_days(range_from timestamp with time zone, range_to timestamp with time zone) RETURNS tstzrange
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT qoe_whole_periods(lower(qoe_range_hours(range_from, range_to)),
                             upper(qoe_range_hours(range_from, range_to)), interval '1 day')
$$;


--
-- Name: qoe_range_hours(timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_range_hours(range_from timestamp with time zone, range_to timestamp with time zone) RETURNS tstzrange
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT qoe_whole_periods(range_from, range_to + interval '1 microsecond', interval '1 hour')
$$;


--
-- Name: qoe_seal_pruned_hours(integer, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_seal_pruned_hours(tenant integer, cutoff timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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


--
-- Name: qoe_selected(text, text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_selected(value text, selection text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT '*' = ANY (selection) OR value = ANY (selection)
$$;


--
-- Name: qoe_sessions_sums(timestamp with time zone, timestamp with time zone, interval, boolean, text, text[], text[], text[], text[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_sessions_sums(lo timestamp with time zone, hi timestamp with time zone, grain interval, by_dimensions boolean, breakdown text, apps text[], versions text[], streams text[], oses text[], tenants text[]) RETURNS TABLE(period timestamp with time zone, value text, app_name text, app_version text, stream_type text, device_os text, sessions bigint, failed_sessions bigint, ebvs_sessions bigint, started_sessions bigint, startup_ms_sum bigint, startup_score_sum double precision, smoothness_score_sum double precision, scored_sessions bigint, success_score_sum bigint, rebuffer_ms_sum bigint, watch_ms_sum bigint, rebuffer_count_sum bigint, play_ms_sum bigint, dropped_frames_sum bigint, bitrate_sum numeric, bitrate_sessions bigint, startup_histogram numeric, tenant_id integer)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
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


--
-- Name: qoe_tenant_selected(integer, text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_tenant_selected(tenant integer, selection text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT selection IS NULL OR cardinality(selection) = 0 OR '*' = ANY (selection)
           OR tenant::text = ANY (selection)
$$;


--
-- Name: qoe_whole_periods(timestamp with time zone, timestamp with time zone, interval); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.qoe_whole_periods(range_from timestamp with time zone, range_end timestamp with time zone, period interval) RETURNS tstzrange
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN date_bin(period, range_from - interval '1 microsecond',
                              timestamptz '1970-01-01Z') + period
                     < date_bin(period, range_end, timestamptz '1970-01-01Z')
                THEN tstzrange(date_bin(period, range_from - interval '1 microsecond',
                                        timestamptz '1970-01-01Z') + period,
                               date_bin(period, range_end, timestamptz '1970-01-01Z'))
                ELSE 'empty'::tstzrange END
$$;


--
-- Name: refresh_qoe_rollups(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.refresh_qoe_rollups() RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: startup_histogram_bounds(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.startup_histogram_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
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


--
-- Name: startup_histogram_of(integer, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.startup_histogram_of(bucket integer, sessions bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$SELECT sessions * ('{10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000,10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}'::numeric[])[bucket + 1]$$;


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
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    id integer NOT NULL,
    tenant_id integer NOT NULL,
    name text NOT NULL,
    prefix text NOT NULL,
    key_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone,
    last_used_at timestamp with time zone,
    rate_limit integer,
    CONSTRAINT api_keys_key_hash_check CHECK ((length(key_hash) = 32)),
    CONSTRAINT api_keys_name_check CHECK ((length(name) <= 200)),
    CONSTRAINT api_keys_prefix_check CHECK (((length(prefix) >= 4) AND (length(prefix) <= 16))),
    CONSTRAINT api_keys_rate_limit_check CHECK ((rate_limit >= 0))
);


--
-- Name: api_keys_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.api_keys ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.api_keys_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: qoe_daily_breakdown; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.qoe_daily_breakdown WITH (security_invoker='true') AS
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
    startup_histogram,
    tenant_id
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

CREATE VIEW public.qoe_hourly WITH (security_invoker='true') AS
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
    r.startup_histogram,
    r.tenant_id
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
    a.startup_histogram,
    a.tenant_id
   FROM dirty,
    LATERAL public.qoe_hourly_aggregate(dirty.hours) a(hour, app_name, app_version, stream_type, device_os, sessions, failed_sessions, ebvs_sessions, started_sessions, startup_ms_sum, startup_score_sum, smoothness_score_sum, scored_sessions, success_score_sum, rebuffer_ms_sum, watch_ms_sum, rebuffer_count_sum, play_ms_sum, dropped_frames_sum, bitrate_sum, bitrate_sessions, startup_histogram, tenant_id);


--
-- Name: qoe_pruned_before; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.qoe_pruned_before (
    tenant_id integer NOT NULL,
    pruned_before timestamp with time zone NOT NULL,
    CONSTRAINT qoe_pruned_before_pruned_before_check CHECK ((pruned_before = date_trunc('hour'::text, pruned_before, 'UTC'::text)))
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
    tenant_id integer NOT NULL,
    CONSTRAINT sessions_session_id_check CHECK (((length(session_id) >= 1) AND (length(session_id) <= 128))),
    CONSTRAINT sessions_timestamp_check CHECK (("timestamp" > 0))
);


--
-- Name: qoe_session_facts; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.qoe_session_facts WITH (security_invoker='true') AS
 SELECT s.session_id,
    s.ended_at,
    COALESCE(s.app_name, 'unknown'::text) AS app_name,
    COALESCE(s.app_version, 'unknown'::text) AS app_version,
    COALESCE(s.stream_type, 'unknown'::text) AS stream_type,
    COALESCE(s.device_os, 'unknown'::text) AS device_os,
    COALESCE(s.device_model, 'unknown'::text) AS device_model,
    COALESCE(s.device_os_version, 'unknown'::text) AS device_os_version,
    COALESCE(s.content_id, 'unknown'::text) AS content_id,
    ((COALESCE(s.error_count, 0) > 0))::integer AS failed,
    (((s.startup_time_ms IS NULL) AND (COALESCE(s.error_count, 0) = 0)))::integer AS ebvs,
    ((s.startup_time_ms IS NOT NULL))::integer AS started,
    s.startup_time_ms AS startup_ms,
    ((800000.0)::double precision / ((8000 + s.startup_time_ms))::double precision) AS startup_score,
        CASE
            WHEN (s.startup_time_ms IS NOT NULL) THEN ((((100)::double precision / sqrt(((1)::double precision + (((COALESCE(s.rebuffer_count, 0))::double precision / (2.0)::double precision) ^ (2)::double precision)))) + ((100)::double precision * exp((('-10'::integer)::double precision *
            CASE
                WHEN (w.watch_ms > 0) THEN ((COALESCE(s.rebuffer_time_ms, (0)::bigint))::double precision / (w.watch_ms)::double precision)
                ELSE (0)::double precision
            END)))) / (2)::double precision)
            ELSE NULL::double precision
        END AS smoothness_score,
    ((COALESCE(s.session_duration_ms, (1000)::bigint) >= 1000))::integer AS scored,
        CASE
            WHEN (COALESCE(s.session_duration_ms, (1000)::bigint) < 1000) THEN NULL::integer
            WHEN (COALESCE(s.error_count, 0) > 0) THEN 0
            WHEN (s.startup_time_ms IS NULL) THEN 50
            ELSE 100
        END AS success_score,
    COALESCE(s.rebuffer_time_ms, (0)::bigint) AS rebuffer_ms,
    w.watch_ms,
    COALESCE(s.rebuffer_count, 0) AS rebuffer_count,
    COALESCE(s.play_time_ms, (0)::bigint) AS play_ms,
    COALESCE(s.total_dropped_frames, (0)::bigint) AS dropped_frames,
    s.mean_video_format_bitrate AS bitrate,
    width_bucket((s.startup_time_ms)::double precision, public.startup_histogram_bounds()) AS startup_bucket,
    s.tenant_id
   FROM (public.sessions s
     CROSS JOIN LATERAL ( SELECT (COALESCE(s.play_time_ms, (0)::bigint) + COALESCE(s.rebuffer_time_ms, (0)::bigint)) AS watch_ms) w);


--
-- Name: rate_limit_counts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rate_limit_counts (
    key_id integer NOT NULL,
    window_start timestamp with time zone NOT NULL,
    worker uuid NOT NULL,
    admitted integer NOT NULL,
    claimed integer NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT rate_limit_counts_admitted_check CHECK ((admitted >= 0)),
    CONSTRAINT rate_limit_counts_claimed_check CHECK ((claimed >= 0)),
    CONSTRAINT rate_limit_counts_key_id_check CHECK ((key_id >= 0))
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: tenant_read_roles; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenant_read_roles (
    role_name name NOT NULL,
    tenant_id integer NOT NULL
);


--
-- Name: tenants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tenants (
    id integer NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    retention_days integer,
    CONSTRAINT tenants_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT tenants_retention_days_check CHECK (((retention_days >= 0) AND (retention_days <= 36500))),
    CONSTRAINT tenants_slug_check CHECK ((slug ~ '^[a-z0-9-]{1,40}$'::text))
);


--
-- Name: tenants_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.tenants ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.tenants_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: api_keys api_keys_key_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: qoe_daily_breakdown_rollup qoe_daily_breakdown_rollup_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_daily_breakdown_rollup
    ADD CONSTRAINT qoe_daily_breakdown_rollup_pkey PRIMARY KEY (dimension, day, tenant_id, app_name, app_version, stream_type, device_os, value);


--
-- Name: qoe_hourly_breakdown_rollup qoe_hourly_breakdown_rollup_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_hourly_breakdown_rollup
    ADD CONSTRAINT qoe_hourly_breakdown_rollup_pkey PRIMARY KEY (dimension, hour, tenant_id, app_name, app_version, stream_type, device_os, value);


--
-- Name: qoe_hourly_rollup qoe_hourly_rollup_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_hourly_rollup
    ADD CONSTRAINT qoe_hourly_rollup_pkey PRIMARY KEY (hour, tenant_id, app_name, app_version, stream_type, device_os);


--
-- Name: qoe_pruned_before qoe_pruned_before_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_pruned_before
    ADD CONSTRAINT qoe_pruned_before_pkey PRIMARY KEY (tenant_id);


--
-- Name: rate_limit_counts rate_limit_counts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rate_limit_counts
    ADD CONSTRAINT rate_limit_counts_pkey PRIMARY KEY (key_id, window_start, worker);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (tenant_id, session_id);


--
-- Name: tenant_read_roles tenant_read_roles_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_read_roles
    ADD CONSTRAINT tenant_read_roles_pkey PRIMARY KEY (role_name);


--
-- Name: tenants tenants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_pkey PRIMARY KEY (id);


--
-- Name: tenants tenants_slug_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenants
    ADD CONSTRAINT tenants_slug_key UNIQUE (slug);


--
-- Name: api_keys_tenant_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX api_keys_tenant_id_idx ON public.api_keys USING btree (tenant_id);


--
-- Name: rate_limit_counts_window_start_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX rate_limit_counts_window_start_idx ON public.rate_limit_counts USING btree (window_start);


--
-- Name: sessions_ended_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_ended_at_idx ON public.sessions USING btree (ended_at);


--
-- Name: sessions_session_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_session_id_idx ON public.sessions USING btree (session_id);


--
-- Name: sessions_started_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_started_at_idx ON public.sessions USING btree (started_at);


--
-- Name: sessions_tenant_id_ended_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sessions_tenant_id_ended_at_idx ON public.sessions USING btree (tenant_id, ended_at);


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
-- Name: api_keys api_keys_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: qoe_pruned_before qoe_pruned_before_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.qoe_pruned_before
    ADD CONSTRAINT qoe_pruned_before_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id) ON DELETE CASCADE;


--
-- Name: sessions sessions_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: tenant_read_roles tenant_read_roles_tenant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tenant_read_roles
    ADD CONSTRAINT tenant_read_roles_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants(id);


--
-- Name: qoe_daily_breakdown_rollup; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.qoe_daily_breakdown_rollup ENABLE ROW LEVEL SECURITY;

--
-- Name: qoe_hourly_breakdown_rollup; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.qoe_hourly_breakdown_rollup ENABLE ROW LEVEL SECURITY;

--
-- Name: qoe_hourly_rollup; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.qoe_hourly_rollup ENABLE ROW LEVEL SECURITY;

--
-- Name: sessions; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.sessions ENABLE ROW LEVEL SECURITY;

--
-- Name: qoe_daily_breakdown_rollup tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.qoe_daily_breakdown_rollup USING (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER))))) WITH CHECK (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))));


--
-- Name: qoe_hourly_breakdown_rollup tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.qoe_hourly_breakdown_rollup USING (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER))))) WITH CHECK (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))));


--
-- Name: qoe_hourly_rollup tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.qoe_hourly_rollup USING (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER))))) WITH CHECK (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))));


--
-- Name: sessions tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.sessions USING (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER))))) WITH CHECK (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (tenant_id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))));


--
-- Name: tenants tenant_isolation; Type: POLICY; Schema: public; Owner: -
--

CREATE POLICY tenant_isolation ON public.tenants USING (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER))))) WITH CHECK (((NOT (EXISTS ( SELECT
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))) OR (id = ( SELECT m.tenant_id
   FROM public.tenant_read_roles m
  WHERE (m.role_name = CURRENT_USER)))));


--
-- Name: tenants; Type: ROW SECURITY; Schema: public; Owner: -
--

ALTER TABLE public.tenants ENABLE ROW LEVEL SECURITY;

--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125120000'),
    ('20261125130000'),
    ('20261125140000'),
    ('20261126100000'),
    ('20261126110000'),
    ('20261126120000'),
    ('20261126120500'),
    ('20261127100000'),
    ('20261127110000'),
    ('20261128100000');
