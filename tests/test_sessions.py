"""POST /v1/sessions through a real server, checked against the rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import TEST_API_KEY
from tests.payloads import SDK_EXAMPLE, SDK_HEADERS, payload_a, payload_b
from tests.rawhttp import exchange, request_head


def post(api: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.post("/v1/sessions", content=content, headers={**SDK_HEADERS, **headers})


def test_sdk_example_is_stored_with_every_column(api, db):
    response = api.post("/v1/sessions", content=SDK_EXAMPLE, headers=SDK_HEADERS)

    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "sessionId": "3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11",
    }
    row = db.session("3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11")
    assert row is not None
    assert {
        k: row[k]
        for k in (
            "timestamp",
            "session_duration_ms",
            "startup_time_ms",
            "rebuffer_time_ms",
            "rebuffer_count",
            "play_time_ms",
            "rebuffer_ratio",
            "total_dropped_frames",
            "total_seek_count",
            "total_seek_time_ms",
            "mean_video_format_bitrate",
            "error_count",
        )
    } == {
        "timestamp": 1771149600000,
        "session_duration_ms": 45000,
        "startup_time_ms": 450,
        "rebuffer_time_ms": 1200,
        "rebuffer_count": 2,
        "play_time_ms": 42000,
        "rebuffer_ratio": 0.028,
        "total_dropped_frames": 12,
        "total_seek_count": 1,
        "total_seek_time_ms": 300,
        "mean_video_format_bitrate": 2500000,
        "error_count": 0,
    }
    assert row["ended_at"] == datetime(2026, 2, 15, 10, 0, tzinfo=UTC)
    assert row["started_at"] == datetime(2026, 2, 15, 9, 59, 15, tzinfo=UTC)
    assert row["payload"] == json.loads(SDK_EXAMPLE)
    assert row["schema_version"] is None
    assert row["created_at"] == row["updated_at"]


def test_schema_1_0_payload_fills_its_columns(api, db):
    body = payload_b(futureField={"added": "in 1.1.0"})

    assert post(api, body).status_code == 200

    row = db.session(body["sessionId"])
    assert {
        k: row[k]
        for k in (
            "schema_version",
            "content_id",
            "stream_type",
            "startup_time_ms",
            "play_time_ms",
            "rebuffer_time_ms",
            "rebuffer_count",
            "error_count",
            "last_error_code",
            "last_error_category",
            "quality_switch_count",
            "mean_video_format_bitrate",
            "total_dropped_frames",
            "rebuffer_ratio",
            "device_model",
            "device_os",
            "device_os_version",
            "app_name",
            "app_version",
            "started_at",
        )
    } == {
        "schema_version": "1.0.0",
        "content_id": "movie-42",
        "stream_type": "VOD",
        "startup_time_ms": 800,
        "play_time_ms": 60000,
        "rebuffer_time_ms": 500,
        "rebuffer_count": 1,
        "error_count": 1,
        "last_error_code": 2001,
        "last_error_category": "NETWORK",
        "quality_switch_count": 3,
        "mean_video_format_bitrate": 3_200_000,
        "total_dropped_frames": 7,
        "rebuffer_ratio": 0.0083,
        "device_model": "Pixel 8",
        "device_os": "Android",
        "device_os_version": "15",
        "app_name": "DemoPlayer",
        "app_version": "2.3.1",
        "started_at": None,
    }
    # Unknown keys (a later minor version of the schema) are kept in the raw payload.
    assert row["payload"]["futureField"] == {"added": "in 1.1.0"}
    assert row["payload"]["custom"] == {"experiment": "b"}


# (case, overrides of payload A, expected columns)
ACCEPTED = [
    ("numeric sessionId of old SDK builds", {"sessionId": 5}, {"session_id": "5"}),
    (
        "zero durations are real values",
        {"sessionDurationMs": 0, "startupTimeMs": 0, "playTimeMs": 0, "rebufferRatio": 0.0},
        {"session_duration_ms": 0, "startup_time_ms": 0, "play_time_ms": 0, "rebuffer_ratio": 0.0},
    ),
    (
        "Media3 -1 sentinel means unknown",
        {"meanVideoFormatBitrate": -1, "totalDroppedFrames": -1, "rebufferRatio": -1},
        {"mean_video_format_bitrate": None, "total_dropped_frames": None, "rebuffer_ratio": None},
    ),
    (
        "explicit nulls",
        {"startupTimeMs": None, "errorCount": None, "rebufferRatio": None},
        {"startup_time_ms": None, "error_count": None, "rebuffer_ratio": None},
    ),
    (
        "start date written as the string null",
        {"sessionStartDateIso": "null"},
        {"started_at": None},
    ),
    ("start date that is not a date", {"sessionStartDateIso": "yesterday"}, {"started_at": None}),
    (
        "start date without zone is UTC",
        {"sessionStartDateIso": "2026-02-15T09:59:15.000"},
        {"started_at": datetime(2026, 2, 15, 9, 59, 15, tzinfo=UTC)},
    ),
    (
        "whole-number float for an integer metric",
        {"startupTimeMs": 450.0},
        {"startup_time_ms": 450},
    ),
    (
        "largest values that fit their columns",
        {"rebufferCount": 2**31 - 1, "playTimeMs": 2**63 - 1},
        {"rebuffer_count": 2**31 - 1, "play_time_ms": 2**63 - 1},
    ),
    ("unknown stream type kept only in payload", {"streamType": "DVR"}, {"stream_type": None}),
    ("stream type in lower case", {"streamType": "live"}, {"stream_type": "LIVE"}),
    ("unknown error category", {"lastErrorCategory": "COSMIC_RAY"}, {"last_error_category": None}),
    (
        "fractional average bitrate",
        {"avgBitrateKbps": 2500.5, "meanVideoFormatBitrate": None},
        {"mean_video_format_bitrate": 2500500},
    ),
    ("unicode text", {"contentId": "épisode-1 🎬"}, {"content_id": "épisode-1 🎬"}),
]


@pytest.mark.parametrize(
    ("overrides", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted_payloads_store_expected_columns(api, db, overrides, expected):
    body = payload_a(**overrides)

    response = post(api, body)

    assert response.status_code == 200, response.text
    session_id = str(body["sessionId"])
    assert response.json()["sessionId"] == session_id
    row = db.session(session_id)
    assert {k: row[k] for k in expected} == expected
    assert row["payload"] == body  # the raw payload keeps what the columns could not


def _without(key: str) -> dict[str, Any]:
    body = payload_a()
    del body[key]
    return body


# (case, body, field named in the error)
REJECTED = [
    ("missing sessionId", _without("sessionId"), "sessionId"),
    ("blank sessionId", payload_a(sessionId="   "), "sessionId"),
    ("empty sessionId", payload_a(sessionId=""), "sessionId"),
    ("sessionId over 128 chars", payload_a(sessionId="x" * 129), "sessionId"),
    ("sessionId of the wrong type", payload_a(sessionId=["a"]), "sessionId"),
    ("sessionId true", payload_a(sessionId=True), "sessionId"),
    ("missing timestamp", _without("timestamp"), "timestamp"),
    ("zero timestamp", payload_a(timestamp=0), "timestamp"),
    ("negative timestamp", payload_a(timestamp=-1771149600000), "timestamp"),
    ("timestamp beyond year 9999", payload_a(timestamp=10**16), "timestamp"),
    ("timestamp as a string", payload_a(timestamp="1771149600000"), "timestamp"),
    ("negative duration", payload_a(sessionDurationMs=-5), "sessionDurationMs"),
    ("negative ratio", payload_a(rebufferRatio=-0.5), "rebufferRatio"),
    ("fractional count", payload_a(rebufferCount=1.5), "rebufferCount"),
    ("boolean metric", payload_a(errorCount=False), "errorCount"),
    ("string metric", payload_a(startupTimeMs="450"), "startupTimeMs"),
    ("count over int4", payload_a(rebufferCount=2**31), "rebufferCount"),
    ("duration over int8", payload_a(playTimeMs=2**63), "playTimeMs"),
    ("huge ratio", payload_a(rebufferRatio=10**400), "rebufferRatio"),
    (
        "start date of the wrong type",
        payload_a(sessionStartDateIso=1771149600000),
        "sessionStartDateIso",
    ),
    ("device that is not an object", payload_b(device="Pixel"), "device"),
    ("nested wrong type", payload_b(app={"name": 7}), "app.name"),
    ("custom label that is not a string", payload_b(custom={"n": 1}), "custom"),
    ("NUL in a known string", payload_b(contentId="a\u0000b"), "contentId"),
    ("NUL in an unknown nested key", payload_b(extra={"deep": ["ok", "x\u0000"]}), "extra.deep[1]"),
    ("unpaired surrogate", '{"sessionId":"s1","timestamp":1,"contentId":"\\ud800"}', "contentId"),
    ("body is an array", [payload_a()], "body"),
    ("body is a string", '"hello"', "body"),
    ("body is null", "null", "body"),
    ("malformed JSON", '{"sessionId": "s1", "timestamp": ', "body"),
    ("empty body", "", "body"),
    ("NaN is not JSON", '{"sessionId":"s1","timestamp":NaN}', "body"),
    ("number overflowing a double", '{"sessionId":"s1","timestamp":1,"x":1e999}', "body"),
    ("not UTF-8", b'{"sessionId":"\xff\xfe","timestamp":1}', "body"),
]


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_unusable_payloads_are_refused_naming_the_field(api, db, body, field):
    response = post(api, body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_SCHEMA"
    assert error["message"].startswith(field)
    assert field in [d["field"] for d in error["details"]]
    assert db.count() == 0


HOUR_MS = 3600 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


# (case, timestamp relative to the server's clock, status)
FUTURE = [
    ("an hour ago", lambda: _now_ms() - HOUR_MS, 200),
    ("23 hours ahead (a phone's clock off by a time zone)", lambda: _now_ms() + 23 * HOUR_MS, 200),
    ("25 hours ahead", lambda: _now_ms() + 25 * HOUR_MS, 400),
    ("year 2099", lambda: 4_070_908_800_000, 400),
]


@pytest.mark.parametrize(
    ("timestamp", "status"), [c[1:] for c in FUTURE], ids=[c[0] for c in FUTURE]
)
@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/validate"])
def test_timestamps_more_than_a_day_ahead_are_refused(api, db, path, timestamp, status):
    body = payload_a(timestamp=timestamp())

    response = api.post(path, json=body, headers=SDK_HEADERS)

    assert response.status_code == status, response.text
    if status == 400:
        error = response.json()["error"]
        assert error["message"] == (
            "timestamp: must not be more than 24 hours ahead of the server's clock"
        )
        assert [d["field"] for d in error["details"]] == ["timestamp"]
    stored = 1 if status == 200 and path == "/v1/sessions" else 0
    assert db.count() == stored


def test_a_summary_from_a_wrong_clock_cannot_freeze_its_session(api, db):
    session_id = str(uuid.uuid4())
    from_2099 = payload_a(sessionId=session_id, timestamp=4_070_908_800_000, playTimeMs=1)
    real = payload_a(sessionId=session_id, timestamp=_now_ms(), playTimeMs=2)

    assert post(api, from_2099).status_code == 400
    assert post(api, real).status_code == 200

    assert db.session(session_id)["play_time_ms"] == 2


def test_every_field_error_is_listed(api, db):
    body = payload_a(sessionId="", timestamp=-1, startupTimeMs=-3, rebufferCount="2")

    error = post(api, body).json()["error"]

    fields = [d["field"] for d in error["details"]]
    assert fields == ["sessionId", "timestamp", "startupTimeMs", "rebufferCount"]
    assert error["message"] == "sessionId: must not be blank (and 3 more)"
    assert db.count() == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"X-API-Key": TEST_API_KEY + "x"}],
    ids=["missing", "wrong", "empty", "longer"],
)
def test_requests_without_the_api_key_are_refused(server, db, headers):
    with server.client() as client:
        response = client.post("/v1/sessions", json=payload_a(), headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"
    assert db.count() == 0
    assert TEST_API_KEY not in server.log()


@pytest.mark.parametrize(
    "sent",
    [f" {TEST_API_KEY}", f"{TEST_API_KEY} ", f"\t{TEST_API_KEY}\t", f"  {TEST_API_KEY}  "],
    ids=["leading space", "trailing space", "tabs", "both"],
)
def test_whitespace_around_the_api_key_is_not_part_of_it(server, db, sent):
    # Raw bytes on the wire: HTTP client libraries trim or refuse such values themselves.
    body = json.dumps(payload_a()).encode()
    head = request_head(
        "POST", "/v1/sessions", [("X-API-Key", sent), ("Content-Length", str(len(body)))]
    )

    response = exchange(urlsplit(server.url).port, head + body)

    assert response.status == 200, response.body
    assert db.session(response.json()["sessionId"]) is not None


@pytest.mark.parametrize(
    "keys",
    [[TEST_API_KEY, TEST_API_KEY], [TEST_API_KEY, "wrong"], ["wrong", TEST_API_KEY]],
    ids=["same key twice", "right then wrong", "wrong then right"],
)
@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/validate", "/v1/sessions/batch"])
def test_api_key_sent_twice_is_refused(server, db, path, keys):
    body = [payload_a()] if path.endswith("batch") else payload_a()
    with server.client() as client:
        response = client.post(
            path, content=json.dumps(body), headers=[("X-API-Key", key) for key in keys]
        )

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "INVALID_API_KEY"
    assert "more than once" in error["message"]
    assert db.count() == 0


def test_api_key_that_is_not_utf8_is_a_401_not_a_500(server, db):
    with server.client() as client:
        response = client.post(
            "/v1/sessions", json=payload_a(), headers={"X-API-Key": b"\xff\xfe-key"}
        )

    assert response.status_code == 401
    assert db.count() == 0


def test_api_key_header_name_is_case_insensitive(server, db):
    with server.client() as client:
        response = client.post(
            "/v1/sessions", json=payload_a(), headers={"x-api-key": TEST_API_KEY}
        )

    assert response.status_code == 200
    assert db.count() == 1


def test_repeat_with_newer_timestamp_updates_the_row(api, db):
    first = payload_a(timestamp=1_771_149_600_000, startupTimeMs=450)
    post(api, first)
    created_at = db.session(first["sessionId"])["created_at"]

    newer = dict(first, timestamp=1_771_149_700_000, startupTimeMs=999)
    assert post(api, newer).status_code == 200

    row = db.session(first["sessionId"])
    assert row["startup_time_ms"] == 999
    assert row["timestamp"] == 1_771_149_700_000
    assert row["payload"] == newer
    assert row["created_at"] == created_at
    assert row["updated_at"] > created_at
    assert db.count() == 1


def test_stale_retry_never_overwrites_a_newer_summary(api, db):
    newer = payload_a(timestamp=1_771_149_700_000, startupTimeMs=999)
    post(api, newer)
    before = db.session(newer["sessionId"])

    stale = dict(newer, timestamp=1_771_149_600_000, startupTimeMs=1)
    response = post(api, stale)

    assert response.status_code == 200
    assert response.json() == {"status": "success", "sessionId": newer["sessionId"]}
    assert db.session(newer["sessionId"]) == before


def test_concurrent_posts_of_one_id_keep_the_newest(server, db):
    session_id = "concurrent-1"
    bodies = [
        payload_a(sessionId=session_id, timestamp=1_771_149_600_000 + i, playTimeMs=i)
        for i in range(40)
    ]

    async def send_all() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": TEST_API_KEY}) as c:
            responses = await asyncio.gather(*(c.post("/v1/sessions", json=b) for b in bodies))
        return [r.status_code for r in responses]

    assert asyncio.run(send_all()) == [200] * 40
    rows = db.query("SELECT play_time_ms, timestamp FROM sessions")
    assert rows == [{"play_time_ms": 39, "timestamp": 1_771_149_600_039}]


def test_gzip_body_is_decoded(api, db):
    body = payload_a()

    response = post(api, gzip.compress(json.dumps(body).encode()), **{"Content-Encoding": "gzip"})

    assert response.status_code == 200
    assert db.session(body["sessionId"])["payload"] == body


def test_corrupt_gzip_is_refused(api, db):
    response = post(api, b"not gzip at all", **{"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SCHEMA"
    assert db.count() == 0


def test_other_content_encodings_are_unsupported(api, db):
    response = post(api, json.dumps(payload_a()), **{"Content-Encoding": "br"})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert db.count() == 0


def _padded(size: int) -> bytes:
    body = payload_a()
    body["padding"] = ""
    short = len(json.dumps(body))
    body["padding"] = "x" * (size - short)
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    return encoded


def test_body_at_the_limit_is_accepted(api, db):
    assert post(api, _padded(64 * 1024)).status_code == 200
    assert db.count() == 1


def test_body_over_the_limit_is_refused(api, db):
    response = post(api, _padded(64 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert db.count() == 0


def test_gzip_body_over_the_limit_once_decoded_is_refused(api, db):
    compressed = gzip.compress(_padded(64 * 1024 + 1))
    assert len(compressed) < 2048

    response = post(api, compressed, **{"Content-Encoding": "gzip"})

    assert response.status_code == 413
    assert db.count() == 0
