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

SET default_tablespace = '';

SET default_table_access_method = heap;

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
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125120000');
