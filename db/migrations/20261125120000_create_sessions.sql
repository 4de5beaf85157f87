-- migrate:up
-- One row per playback session: the summary as received (payload) plus the core metrics in
-- typed columns for dashboards and ad-hoc SQL. Column names are a public contract; see
-- docs/schema.md before renaming anything.
CREATE TABLE sessions (
    session_id                text PRIMARY KEY
                              CHECK (length(session_id) BETWEEN 1 AND 128),
    "timestamp"               bigint NOT NULL CHECK ("timestamp" > 0),
    ended_at                  timestamptz NOT NULL,
    started_at                timestamptz,
    schema_version            text,
    session_duration_ms       bigint,
    startup_time_ms           bigint,
    rebuffer_time_ms          bigint,
    rebuffer_count            integer,
    play_time_ms              bigint,
    rebuffer_ratio            double precision,
    total_dropped_frames      bigint,
    total_seek_count          integer,
    total_seek_time_ms        bigint,
    mean_video_format_bitrate bigint,
    error_count               integer,
    last_error_code           integer,
    last_error_category       text,
    quality_switch_count      integer,
    content_id                text,
    stream_type               text,
    device_model              text,
    device_os                 text,
    device_os_version         text,
    app_name                  text,
    app_version               text,
    payload                   jsonb NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Grafana's $__timeFilter(ended_at) / $__timeFilter(started_at) range scans.
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at);
CREATE INDEX sessions_started_at_idx ON sessions (started_at);

-- migrate:down
DROP TABLE sessions;
