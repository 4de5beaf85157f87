"""POST /v1/sessions/batch (per-item results, one commit) and POST /v1/sessions/validate
(the answers of POST /v1/sessions, nothing stored)."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.payloads import SDK_HEADERS, payload_a, payload_b
from tests.test_sessions import REJECTED, post


def post_batch(api, items, **headers):
    content = items if isinstance(items, str | bytes) else json.dumps(items)
    return api.post("/v1/sessions/batch", content=content, headers={**SDK_HEADERS, **headers})


def test_batch_stores_valid_items_and_reports_each(api, db):
    first, second = payload_a(), payload_b()
    items = [
        first,
        payload_a(sessionId=""),
        second,
        "not an object",
        payload_a(startupTimeMs=-7),
        payload_b(sessionId=second["sessionId"], timestamp=second["timestamp"] + 1, contentId="v2"),
    ]

    response = post_batch(api, items)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["stored"], body["rejected"], body["failed"]) == (
        "partial",
        3,
        3,
        0,
    )
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [
        "stored",
        "rejected",
        "stored",
        "rejected",
        "rejected",
        "stored",
    ]
    assert results[0]["sessionId"] == first["sessionId"]
    assert results[1]["error"]["code"] == "INVALID_SCHEMA"
    assert results[1]["error"]["details"] == [
        {"field": "[1].sessionId", "message": "must not be blank"}
    ]
    assert results[3]["error"]["details"][0]["field"] == "[3]"
    assert results[4]["error"]["message"].startswith("[4].startupTimeMs")
    assert {r["session_id"] for r in db.query("SELECT session_id FROM sessions")} == {
        first["sessionId"],
        second["sessionId"],
    }
    # Two summaries of one session in a batch: the newer one is what is stored.
    assert db.session(second["sessionId"])["content_id"] == "v2"
    assert db.session(first["sessionId"])["payload"] == first


def test_batch_of_valid_items_is_one_commit(api, db):
    items = [payload_a() for _ in range(50)]

    response = api.post(
        "/v1/sessions/batch",
        content=gzip.compress(json.dumps(items).encode()),
        headers={**SDK_HEADERS, "Content-Encoding": "gzip"},
    )

    assert response.status_code == 200
    assert response.json()["status"] == "success"
    rows = db.query("SELECT count(*) AS n, count(DISTINCT xmin::text) AS commits FROM sessions")
    assert rows == [{"n": 50, "commits": 1}]  # one transaction id: one commit


# (case, body, status, code)
BATCH_REFUSED = [
    ("not an array", json.dumps(payload_a()), 400, "INVALID_SCHEMA"),
    ("malformed", "[{", 400, "INVALID_SCHEMA"),
    ("too many items", json.dumps([payload_a() for _ in range(501)]), 413, "PAYLOAD_TOO_LARGE"),
]


@pytest.mark.parametrize(
    ("body", "status", "code"), [c[1:] for c in BATCH_REFUSED], ids=[c[0] for c in BATCH_REFUSED]
)
def test_unusable_batches_are_refused_whole(api, db, body, status, code):
    response = post_batch(api, body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert db.count() == 0


def test_batch_needs_the_api_key(server, db):
    with server.client() as client:
        response = client.post("/v1/sessions/batch", json=[payload_a()])

    assert response.status_code == 401
    assert db.count() == 0


def comparable(response) -> tuple[int, dict]:
    body = response.json()
    body["error"].pop("timestamp")
    return response.status_code, body


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_validate_refuses_exactly_what_ingest_refuses(api, db, body, field):
    content = body if isinstance(body, str | bytes) else json.dumps(body)

    validated = api.post("/v1/sessions/validate", content=content, headers=SDK_HEADERS)

    assert comparable(validated) == comparable(post(api, body))
    assert db.count() == 0


def test_validate_accepts_a_valid_summary_without_storing_it(api, db):
    body = payload_b()

    response = api.post("/v1/sessions/validate", json=body, headers=SDK_HEADERS)

    assert response.status_code == 200
    assert response.json() == {"status": "valid", "sessionId": body["sessionId"]}
    assert db.count() == 0


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({}, "{}", 401),
        ({"Content-Encoding": "br"}, "{}", 415),
        ({}, "x" * 70_000, 413),
    ],
    ids=["no key", "unsupported encoding", "too large"],
)
def test_validate_has_the_same_auth_and_limits(server, db, headers, content, status):
    with server.client() as client:
        key = {} if status == 401 else {"X-API-Key": "test-key-0123456789"}
        response = client.post("/v1/sessions/validate", content=content, headers={**key, **headers})

    assert response.status_code == status
    assert db.count() == 0
