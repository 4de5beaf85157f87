"""Normalise a validated summary into one `sessions` row (docs/schema.md maps every column)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from service.keys import Tenant
from service.summary import SessionSummary

STREAM_TYPES = frozenset({"VOD", "LIVE"})
ERROR_CATEGORIES = frozenset({"NETWORK", "DRM", "SOURCE", "DECODER", "UNKNOWN"})
# PostgreSQL's timestamptz takes UTC offsets strictly within 16 hours.
_OFFSET_LIMIT = timedelta(hours=16)


@dataclass(frozen=True)
class SessionRow:
    session_id: str
    timestamp: int
    # The row as one JSON object whose keys are the column names, payload spliced in as
    # received: the upsert statement reads a JSON array of these (jsonb_to_recordset).
    json: str
    # Whose session it is, from the API key that sent it (never from the payload): set by
    # `for_tenant()`. A row without one is refused by the database (tenant_id NOT NULL).
    tenant: Tenant | None = None

    @property
    def identity(self) -> tuple[int, str]:
        """What the database keys the session by: (tenant_id, session_id)."""
        return (self.tenant.id if self.tenant else 0, self.session_id)

    def for_tenant(self, tenant: Tenant) -> SessionRow:
        # The tenant's column goes first; the payload stays nested under "payload", so no
        # key a client sends can reach it.
        if self.tenant is not None:
            raise ValueError(f"session {self.session_id!r} has its tenant already")
        row_json = f'{{"tenant_id":{int(tenant.id)},' + self.json[1:]
        return replace(self, json=row_json, tenant=tenant)


def to_row(summary: SessionSummary, payload_text: str) -> SessionRow:
    columns = normalise(summary)
    row_json = json.dumps(columns, separators=(",", ":"))[:-1] + ',"payload":' + payload_text + "}"
    return SessionRow(summary.sessionId, summary.timestamp, row_json)


def normalise(s: SessionSummary) -> dict[str, Any]:
    """Typed column values; NULL wherever the summary had no usable value."""
    device = s.device
    app = s.app
    return {
        "session_id": s.sessionId,
        "timestamp": s.timestamp,
        "started_at": parse_start_date(s.sessionStartDateIso),
        "schema_version": s.schemaVersion,
        "session_duration_ms": s.sessionDurationMs,
        "startup_time_ms": s.startupTimeMs,
        "rebuffer_time_ms": s.rebufferTimeMs,
        "rebuffer_count": s.rebufferCount,
        "play_time_ms": s.playTimeMs,
        "rebuffer_ratio": s.rebufferRatio,
        "total_dropped_frames": _first(s.totalDroppedFrames, s.droppedFrames),
        "total_seek_count": s.totalSeekCount,
        "total_seek_time_ms": s.totalSeekTimeMs,
        "mean_video_format_bitrate": _first(
            s.meanVideoFormatBitrate,
            None if s.avgBitrateKbps is None else round(s.avgBitrateKbps * 1000),
        ),
        "error_count": s.errorCount,
        "last_error_code": s.lastErrorCode,
        "last_error_category": _known(s.lastErrorCategory, ERROR_CATEGORIES),
        "quality_switch_count": s.qualitySwitchCount,
        "content_id": s.contentId,
        "stream_type": _known(s.streamType, STREAM_TYPES),
        "device_model": device.model if device else None,
        "device_os": device.os if device else None,
        "device_os_version": device.osVersion if device else None,
        "app_name": app.name if app else None,
        "app_version": app.version if app else None,
    }


def parse_start_date(value: str | None) -> str | None:
    """ISO-8601 start time in UTC, or None when absent or uninterpretable (the SDK sends
    "null"). Python reads offsets PostgreSQL refuses (+16:00 and beyond, fractions of a
    second such as +01:00:00.5, instants outside years 1-9999 once in UTC): those are
    uninterpretable too, kept only in the payload, never sent to the database to fail."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    offset = moment.utcoffset()
    if offset is not None and (offset.microseconds or abs(offset) >= _OFFSET_LIMIT):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the SDK writes UTC
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _known(value: str | None, allowed: frozenset[str]) -> str | None:
    if value is None:
        return None
    upper = value.upper()
    return upper if upper in allowed else None
