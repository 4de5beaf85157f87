"""Property-based tests: whatever body a phone (or anyone) sends, in either payload shape or
as a batch, the answer is a 2xx or a 4xx in the one error shape, never a 5xx; a refused body
writes nothing; an accepted one is stored. Bounded for CI (a few hundred examples);
`make fuzz` runs schemathesis against the served OpenAPI description for longer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_API_KEY
from tests.payloads import SDK_HEADERS, payload_a, payload_b

EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Anything JSON can say, NaN and huge integers included (Python's json writes them).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
counts = st.integers(min_value=-2, max_value=2**31) | st.sampled_from([-1, 0, 2**63 - 1, 2**63])
millis = st.integers(min_value=-1, max_value=2**53) | st.sampled_from([0, 1771149600000])
texts = st.text(max_size=60) | st.sampled_from(["", " ", "null", "\x00", "VOD", "LIVE", "DVR"])


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(valid, valid, valid, st.none(), json_values)


def session_ids() -> st.SearchStrategy[Any]:
    fresh = st.builds(lambda: str(uuid.uuid4()))
    return st.one_of(fresh, fresh, fresh, st.integers(), texts, json_values)


payloads_a = st.fixed_dictionaries(
    {
        "sessionId": session_ids(),
        "timestamp": maybe(millis),
        "sessionStartDateIso": maybe(
            texts | st.sampled_from(["2026-02-15T09:59:15.000Z", "2026-02-30T25:00:00.000Z"])
        ),
        "sessionDurationMs": maybe(millis),
        "startupTimeMs": maybe(counts),
        "rebufferTimeMs": maybe(counts),
        "rebufferCount": maybe(counts),
        "playTimeMs": maybe(counts),
        "rebufferRatio": maybe(st.floats(allow_nan=False) | st.floats(0, 1)),
        "totalDroppedFrames": maybe(counts),
        "totalSeekCount": maybe(counts),
        "totalSeekTimeMs": maybe(counts),
        "meanVideoFormatBitrate": maybe(counts),
        "errorCount": maybe(counts),
    }
)

_B_OPTIONAL = {
    "contentId": maybe(texts),
    "streamType": maybe(texts),
    "startupTimeMs": maybe(counts),
    "playTimeMs": maybe(counts),
    "rebufferTimeMs": maybe(counts),
    "rebufferCount": maybe(counts),
    "errorCount": maybe(counts),
    "lastErrorCode": maybe(counts),
    "lastErrorCategory": maybe(
        st.sampled_from(["NETWORK", "DRM", "SOURCE", "DECODER", "UNKNOWN", "OTHER"])
    ),
    "qualitySwitchCount": maybe(counts),
    "avgBitrateKbps": maybe(counts),
    "droppedFrames": maybe(counts),
    "rebufferRatio": maybe(st.floats(0, 1)),
    "device": maybe(st.fixed_dictionaries({}, optional={k: texts for k in ("model", "os")})),
    "app": maybe(st.fixed_dictionaries({}, optional={"name": texts, "version": texts})),
    "custom": maybe(st.dictionaries(st.text(max_size=10), texts, max_size=4)),
    "endReason": maybe(st.sampled_from(["PLAYBACK_ENDED", "PLAYER_RELEASED", "SOMETHING"])),
}
payloads_b = st.fixed_dictionaries(
    {
        "schemaVersion": maybe(st.sampled_from(["1.0.0", "1.1.0", "2.0.0", ""]) | texts),
        "sessionId": session_ids(),
        "timestamp": maybe(millis),
    },
    optional=_B_OPTIONAL,
)
# One key of a known-good payload replaced or removed: the edge of what is accepted.
mutated = st.one_of(
    st.builds(
        lambda base, key, value: {**base, key: value},
        st.builds(payload_a) | st.builds(payload_b),
        st.sampled_from(sorted(set(payload_a()) | set(payload_b()))),
        json_values,
    ),
    st.builds(
        lambda base, key: {k: v for k, v in base.items() if k != key},
        st.builds(payload_a) | st.builds(payload_b),
        st.sampled_from(sorted(set(payload_a()) | set(payload_b()))),
    ),
)
bodies = st.one_of(payloads_a, payloads_b, mutated, json_values)


class Rows:
    """The sessions table, read through one connection for speed."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def exists(self, session_id: str) -> bool:
        found = self._conn.execute("SELECT 1 FROM sessions WHERE session_id = %s", (session_id,))
        return found.fetchone() is not None


@pytest.fixture(scope="module")
def rows(database_url) -> Iterator[Rows]:
    with psycopg.connect(database_url.libpq, autocommit=True) as conn:
        yield Rows(conn)


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with server.client(TEST_API_KEY) as api:
        yield api


def encode(body: Any) -> bytes:
    # json.dumps writes NaN and Infinity (not JSON) and lone surrogates: all fair game.
    return json.dumps(body).encode()


def assert_error_shape(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["timestamp"], int)


@EXAMPLES
@given(body=bodies)
def test_any_single_body_is_stored_or_refused_cleanly(client, rows, body):
    before = rows.count()
    response = client.post("/v1/sessions", content=encode(body), headers=SDK_HEADERS)

    assert response.status_code < 500, response.text
    if 200 <= response.status_code < 300:
        assert rows.exists(response.json()["sessionId"])
    else:
        assert 400 <= response.status_code < 500
        assert_error_shape(response)
        assert rows.count() == before, "a refused body wrote something"


@EXAMPLES
@given(body=bodies)
def test_validate_answers_exactly_as_ingest_would_and_stores_nothing(client, rows, body):
    before = rows.count()
    response = client.post("/v1/sessions/validate", content=encode(body), headers=SDK_HEADERS)

    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert_error_shape(response)
    assert rows.count() == before


@EXAMPLES
@given(items=st.lists(bodies, max_size=8) | json_values)
def test_any_batch_is_answered_per_item_and_stores_only_what_it_says(client, rows, items):
    before = rows.count()
    response = client.post("/v1/sessions/batch", content=encode(items), headers=SDK_HEADERS)

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_shape(response)
        assert rows.count() == before, "a refused batch wrote something"
        return
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    stored = [r for r in results if r["status"] == "stored"]
    assert {r["status"] for r in results} <= {"stored", "rejected"}
    for result in results:
        if result["status"] == "rejected":
            assert result["error"]["code"] and result["error"]["message"]
    for result in stored:
        assert rows.exists(result["sessionId"])
    assert rows.count() - before <= len(stored), "a rejected item was stored"
