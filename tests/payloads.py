"""Session summaries exactly as the Android SDK sends them (../shared/reference/sdk-contract.md)."""

from __future__ import annotations

import json
import uuid
from typing import Any

# Payload A: the shipped SDK (every key present, unknowns as null).
SDK_EXAMPLE = (
    '{"sessionId":"3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11","timestamp":1771149600000,'
    '"sessionStartDateIso":"2026-02-15T09:59:15.000Z","sessionDurationMs":45000,'
    '"startupTimeMs":450,"rebufferTimeMs":1200,"rebufferCount":2,"playTimeMs":42000,'
    '"rebufferRatio":0.028,"totalDroppedFrames":12,"totalSeekCount":1,"totalSeekTimeMs":300,'
    '"meanVideoFormatBitrate":2500000,"errorCount":0}'
)
SDK_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def payload_a(**overrides: Any) -> dict[str, Any]:
    body = json.loads(SDK_EXAMPLE)
    body["sessionId"] = str(uuid.uuid4())
    body.update(overrides)
    return body


def payload_b(**overrides: Any) -> dict[str, Any]:
    """Schema 1.0.0 (the planned successor): nullable fields omitted, nested objects."""
    body: dict[str, Any] = {
        "schemaVersion": "1.0.0",
        "sessionId": str(uuid.uuid4()),
        "timestamp": 1771149600000,
        "contentId": "movie-42",
        "streamType": "VOD",
        "startupTimeMs": 800,
        "playTimeMs": 60000,
        "rebufferTimeMs": 500,
        "rebufferCount": 1,
        "errorCount": 1,
        "lastErrorCode": 2001,
        "lastErrorCategory": "NETWORK",
        "qualitySwitchCount": 3,
        "avgBitrateKbps": 3200,
        "droppedFrames": 7,
        "rebufferRatio": 0.0083,
        "device": {"model": "Pixel 8", "os": "Android", "osVersion": "15"},
        "app": {"name": "DemoPlayer", "version": "2.3.1"},
        "custom": {"experiment": "b"},
    }
    body.update(overrides)
    return body
