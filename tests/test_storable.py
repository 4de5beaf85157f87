"""What validation accepts, PostgreSQL stores: every value the database would refuse is caught
before it, with the same answer from POST /v1/sessions, /validate and each batch item, and
the database never counts a client's mistake as its own error."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.payloads import SDK_EXAMPLE, SDK_HEADERS
from tests.test_writer import metric

# Each body is the SDK example with a fresh sessionId and `extra` spliced in as raw text, so
# that JSON the json module would never write (duplicated keys, exotic numbers) reaches the
# server as sent.


def sdk_text(extra: str) -> tuple[str, str]:
    session_id = str(uuid.uuid4())
    text = SDK_EXAMPLE.replace("3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11", session_id)
    return (text[:-1] + "," + extra + "}" if extra else text), session_id


# (case, extra fields, expected columns) : stored, the start date NULL when PostgreSQL could
# not take it, the payload as sent.
STORED = [
    (
        "offset of 16 hours",
        '"sessionStartDateIso":"2026-02-15T09:59:15+16:00"',
        {"started_at": None},
    ),
    (
        "offset of -16 hours",
        '"sessionStartDateIso":"2026-02-15T09:59:15-16:00"',
        {"started_at": None},
    ),
    (
        "offset with a fraction of a second",
        '"sessionStartDateIso":"2026-02-15T09:59:15+01:00:00.5"',
        {"started_at": None},
    ),
    (
        "year 10000 once in UTC",
        '"sessionStartDateIso":"9999-12-31T23:59:59.999999-15:00"',
        {"started_at": None},
    ),
    (
        "year 0 once in UTC",
        '"sessionStartDateIso":"0001-01-01T00:00:00+01:00"',
        {"started_at": None},
    ),
    (
        "largest offset PostgreSQL takes",
        '"sessionStartDateIso":"2026-02-15T09:59:15+15:59:59"',
        {"started_at": datetime(2026, 2, 14, 17, 59, 16, tzinfo=UTC)},
    ),
    (
        "offset with seconds",
        '"sessionStartDateIso":"2026-02-15T09:59:15+01:00:30"',
        {"started_at": datetime(2026, 2, 15, 8, 58, 45, tzinfo=UTC)},
    ),
    ("smallest number numeric takes", '"x":1e-16383', {}),
    ("zero with the largest exponent numeric takes", '"x":0e1073741823', {}),
    ("a ratio that underflows a double", '"rebufferRatio":1e-400', {"rebuffer_ratio": 0.0}),
    (
        "largest average bitrate, past 2**53",
        '"avgBitrateKbps":9223372036854775,"meanVideoFormatBitrate":null',
        {"mean_video_format_bitrate": 9223372036854775000},
    ),
    ("duplicated key, both storable", '"contentId":"a","contentId":"b"', {"content_id": "b"}),
]

# (case, extra fields, field named in the error)
REFUSED = [
    ("NUL in an overwritten duplicate key", '"contentId":"a\\u0000","contentId":"ok"', "contentId"),
    (
        "NUL in an overwritten nested duplicate",
        '"extra":{"k":"\\u0000","k":1}',
        "extra.k",
    ),
    ("float that underflows numeric", '"x":1e-100000', "x"),
    ("known field that underflows numeric", '"rebufferRatio":1e-100000', "rebufferRatio"),
    ("more decimals than numeric keeps", '"x":[1,1.0e-16383]', "x[1]"),
    ("zero with an exponent numeric refuses", '"x":0e-1073741824', "x"),
    ("unstorable number in an overwritten duplicate", '"x":1e-99999,"x":1', "x"),
    ("nested deeper than 64 levels", '"x":' + "[" * 64 + "]" * 64, "x" + "[0]" * 63),
]


def _batch_field(field: str) -> str:
    return "[0]" if field == "body" else "[0]" + ("" if field.startswith("[") else ".") + field


def _comparable(response) -> tuple[int, dict]:
    body = response.json()
    if "error" in body:
        body["error"].pop("timestamp")
    return response.status_code, body


def _database_errors(api) -> float:
    return metric(api.get("/metrics").text, "database_errors_total")


def _send_all_three(api, text: str):
    validated = api.post("/v1/sessions/validate", content=text, headers=SDK_HEADERS)
    single = api.post("/v1/sessions", content=text, headers=SDK_HEADERS)
    return validated, single


@pytest.mark.parametrize(("extra", "columns"), [c[1:] for c in STORED], ids=[c[0] for c in STORED])
def test_values_postgresql_cannot_interpret_are_stored_with_null_columns(api, db, extra, columns):
    text, session_id = sdk_text(extra)
    errors_before = _database_errors(api)

    validated, single = _send_all_three(api, text)

    assert validated.status_code == 200, validated.text
    assert validated.json() == {"status": "valid", "sessionId": session_id}
    assert single.status_code == 200, single.text
    row = db.session(session_id)
    assert {k: row[k] for k in columns} == columns
    assert row["payload"] == json.loads(text)

    db.clear()
    batch = api.post("/v1/sessions/batch", content=f"[{text}]", headers=SDK_HEADERS)

    assert batch.status_code == 200, batch.text
    assert batch.json()["results"][0]["status"] == "stored"
    batch_row = db.session(session_id)
    assert {k: batch_row[k] for k in columns} == columns
    assert batch_row["payload"] == row["payload"]
    assert _database_errors(api) == errors_before


@pytest.mark.parametrize(("extra", "field"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_values_postgresql_would_refuse_are_refused_before_it(api, db, extra, field):
    text, _ = sdk_text(extra)
    errors_before = _database_errors(api)

    validated, single = _send_all_three(api, text)

    assert single.status_code == 400, single.text
    error = single.json()["error"]
    assert error["code"] == "INVALID_SCHEMA"
    assert error["message"].startswith(field + ":")
    assert [d["field"] for d in error["details"]] == [field]
    assert _comparable(validated) == _comparable(single)

    batch = api.post("/v1/sessions/batch", content=f"[{text}]", headers=SDK_HEADERS)

    assert batch.status_code == 200, batch.text
    result = batch.json()["results"][0]
    assert result["status"] == "rejected"
    assert [d["field"] for d in result["error"]["details"]] == [_batch_field(field)]
    assert db.count() == 0
    assert _database_errors(api) == errors_before


EXACT = "12345678901234567890.123456789"


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/batch"], ids=["single", "batch"])
def test_numbers_are_stored_exactly_as_sent(api, db, path):
    text, session_id = sdk_text(f'"x":{EXACT},"y":[1.50, 1e-320]')
    content = text if path == "/v1/sessions" else f"[ {text} ,\n{sdk_text('')[0]} ]"

    response = api.post(path, content=content, headers=SDK_HEADERS)

    assert response.status_code == 200, response.text
    stored = db.query(
        "SELECT payload->>'x' AS x, payload->'y'->>0 AS fraction,"
        " (payload->'y'->>1)::numeric = 1e-320 AS tiny FROM sessions WHERE session_id = %s",
        session_id,
    )
    # Not through a double: every digit, and the trailing zero, as sent.
    assert stored == [{"x": EXACT, "fraction": "1.50", "tiny": True}]


def test_batch_items_keep_their_own_text_next_to_refused_ones(api, db):
    kept, kept_id = sdk_text(f'"x":{EXACT}')
    refused, _ = sdk_text('"x":1e-100000')
    other, other_id = sdk_text('"contentId":"b\\u00e9"')

    response = api.post(
        "/v1/sessions/batch", content=f"[{kept},{refused},{other}]", headers=SDK_HEADERS
    )

    assert [r["status"] for r in response.json()["results"]] == ["stored", "rejected", "stored"]
    rows = db.query("SELECT session_id, payload->>'x' AS x, content_id FROM sessions")
    assert sorted(rows, key=lambda r: r["session_id"] == other_id) == [
        {"session_id": kept_id, "x": EXACT, "content_id": None},
        {"session_id": other_id, "x": None, "content_id": "bé"},
    ]
