-- :name upsert_sessions :scalar
-- :doc Insert or update sessions given as one JSON array of rows (service/session_row.py);
-- gives how many were inserted or updated.
-- A session is identified by (tenant_id, session_id); its tenant comes from the API key.
-- A summary older than the stored one is ignored (stale retry); created_at is never changed.
-- (tenant_id, session_id) pairs must be unique within one call: the writer merges duplicates.
-- It runs in autocommit: m3w_written_in_time() refuses it, so that nothing is committed, once
-- the server's clock has reached :commit_by (its clients' deadline, see service/store.py).
-- It is called after every row is written, since the count needs them all.
WITH written AS (
INSERT INTO sessions AS stored (
    tenant_id, session_id, "timestamp", ended_at, started_at, schema_version,
    session_duration_ms, startup_time_ms, rebuffer_time_ms, rebuffer_count, play_time_ms,
    rebuffer_ratio, total_dropped_frames, total_seek_count, total_seek_time_ms,
    mean_video_format_bitrate, error_count, last_error_code, last_error_category,
    quality_switch_count, content_id, stream_type, device_model, device_os,
    device_os_version, app_name, app_version, payload
)
SELECT
    r.tenant_id, r.session_id, r."timestamp", to_timestamp(r."timestamp" / 1000.0),
    r.started_at, r.schema_version, r.session_duration_ms, r.startup_time_ms, r.rebuffer_time_ms,
    r.rebuffer_count, r.play_time_ms, r.rebuffer_ratio, r.total_dropped_frames,
    r.total_seek_count, r.total_seek_time_ms, r.mean_video_format_bitrate, r.error_count,
    r.last_error_code, r.last_error_category, r.quality_switch_count, r.content_id,
    r.stream_type, r.device_model, r.device_os, r.device_os_version, r.app_name,
    r.app_version, r.payload
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r (
    tenant_id integer, session_id text, "timestamp" bigint, started_at timestamptz,
    schema_version text,
    session_duration_ms bigint, startup_time_ms bigint, rebuffer_time_ms bigint,
    rebuffer_count integer, play_time_ms bigint, rebuffer_ratio double precision,
    total_dropped_frames bigint, total_seek_count integer, total_seek_time_ms bigint,
    mean_video_format_bitrate bigint, error_count integer, last_error_code integer,
    last_error_category text, quality_switch_count integer, content_id text,
    stream_type text, device_model text, device_os text, device_os_version text,
    app_name text, app_version text, payload jsonb
)
ON CONFLICT (tenant_id, session_id) DO UPDATE SET
    "timestamp" = EXCLUDED."timestamp",
    ended_at = EXCLUDED.ended_at,
    started_at = EXCLUDED.started_at,
    schema_version = EXCLUDED.schema_version,
    session_duration_ms = EXCLUDED.session_duration_ms,
    startup_time_ms = EXCLUDED.startup_time_ms,
    rebuffer_time_ms = EXCLUDED.rebuffer_time_ms,
    rebuffer_count = EXCLUDED.rebuffer_count,
    play_time_ms = EXCLUDED.play_time_ms,
    rebuffer_ratio = EXCLUDED.rebuffer_ratio,
    total_dropped_frames = EXCLUDED.total_dropped_frames,
    total_seek_count = EXCLUDED.total_seek_count,
    total_seek_time_ms = EXCLUDED.total_seek_time_ms,
    mean_video_format_bitrate = EXCLUDED.mean_video_format_bitrate,
    error_count = EXCLUDED.error_count,
    last_error_code = EXCLUDED.last_error_code,
    last_error_category = EXCLUDED.last_error_category,
    quality_switch_count = EXCLUDED.quality_switch_count,
    content_id = EXCLUDED.content_id,
    stream_type = EXCLUDED.stream_type,
    device_model = EXCLUDED.device_model,
    device_os = EXCLUDED.device_os,
    device_os_version = EXCLUDED.device_os_version,
    app_name = EXCLUDED.app_name,
    app_version = EXCLUDED.app_version,
    payload = EXCLUDED.payload,
    updated_at = now()
WHERE stored."timestamp" <= EXCLUDED."timestamp"
RETURNING 1
)
SELECT m3w_written_in_time(count(*), CAST(:commit_by AS double precision)) FROM written
