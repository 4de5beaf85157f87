"""Group commit through real servers: merged duplicates, a poisoned row failing alone,
backpressure, and what the metrics say about the batches."""

from __future__ import annotations

import asyncio
import re

import httpx
import psycopg
import pytest

from tests.conftest import TEST_API_KEY, Database, create_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer


async def post_all(
    url: str, bodies: list[dict], path: str = "/v1/sessions"
) -> list[httpx.Response]:
    """Send every body at once, each on its own connection, as many phones would."""
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": TEST_API_KEY}, timeout=30
    ) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def metric(scrape: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", scrape, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


@pytest.fixture
def slow_batch_server(database_url, tmp_path):
    """A server whose batches wait 300 ms for company, so concurrent requests share one."""
    env = server_env(database_url, M3W_BATCH_WINDOW_MS="300", M3W_BATCH_MAX_ROWS="1000")
    with RunningServer(env, tmp_path / "server.log") as server:
        yield server


def test_one_batch_merges_duplicate_ids_newest_wins(slow_batch_server, db):
    bodies = [
        payload_a(sessionId="dup", timestamp=1_771_149_600_000 + i, playTimeMs=i)
        for i in (3, 1, 4, 2)
    ] + [payload_a() for _ in range(6)]

    responses = asyncio.run(post_all(slow_batch_server.url, bodies))

    assert [r.status_code for r in responses] == [200] * 10
    assert db.session("dup")["play_time_ms"] == 4
    assert db.count() == 7
    scrape = httpx.get(slow_batch_server.url + "/metrics").text
    assert metric(scrape, "ingest_batch_size_count") == 1  # all ten in one transaction
    assert metric(scrape, "ingest_batch_size_sum") == 7  # duplicates merged into one row
    assert metric(scrape, "sessions_ingested_total") == 10  # every request acknowledged


@pytest.fixture
def poisonable_database(postgres_server):
    """A database that refuses one particular row, as PostgreSQL refuses data it cannot
    store: validation lets nothing like it through, so the test plants the refusal."""
    url = create_database(postgres_server, "m3w_poison")
    from service.migrations import dbmate

    dbmate(url, "up")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE sessions ADD CONSTRAINT refuse_poison "
            "CHECK (content_id IS DISTINCT FROM 'poison')"
        )
    return url


def test_a_row_the_database_refuses_fails_alone(poisonable_database, tmp_path):
    env = server_env(poisonable_database, M3W_BATCH_WINDOW_MS="300")
    good = [payload_a() for _ in range(7)]
    poison = payload_a(contentId="poison")
    with RunningServer(env, tmp_path / "server.log") as server:
        responses = asyncio.run(post_all(server.url, [*good[:3], poison, *good[3:]]))
        scrape = httpx.get(server.url + "/metrics").text

    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 400, 200, 200, 200, 200]
    assert responses[3].json()["error"]["code"] == "INVALID_SCHEMA"
    stored = {
        r["session_id"]
        for r in Database(poisonable_database).query("SELECT session_id FROM sessions")
    }
    assert stored == {body["sessionId"] for body in good}
    assert metric(scrape, "sessions_ingested_total") == 7
    assert metric(scrape, 'sessions_rejected_total{reason="invalid_schema"}') == 1


def test_full_queue_answers_503_with_retry_after(database_url, db, tmp_path):
    env = server_env(
        database_url, M3W_QUEUE_MAX_ROWS="3", M3W_BATCH_WINDOW_MS="500", M3W_BATCH_MAX_ROWS="100"
    )
    bodies = [payload_a() for _ in range(8)]
    with RunningServer(env, tmp_path / "server.log") as server:
        responses = asyncio.run(post_all(server.url, bodies))
        scrape = httpx.get(server.url + "/metrics").text

    accepted = [
        b["sessionId"] for b, r in zip(bodies, responses, strict=True) if r.status_code == 200
    ]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) == 3
    assert len(refused) == 5
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "QUEUE_FULL"
        assert int(response.headers["Retry-After"]) >= 1
    assert {r["session_id"] for r in db.query("SELECT session_id FROM sessions")} == set(accepted)
    assert metric(scrape, 'sessions_rejected_total{reason="queue_full"}') == 5


def test_group_commit_off_commits_each_session_alone(database_url, db, tmp_path):
    env = server_env(database_url, M3W_BATCH_MAX_ROWS="1")
    with RunningServer(env, tmp_path / "server.log") as server:
        responses = asyncio.run(post_all(server.url, [payload_a() for _ in range(12)]))
        scrape = httpx.get(server.url + "/metrics").text

    assert [r.status_code for r in responses] == [200] * 12
    assert db.count() == 12
    assert metric(scrape, "ingest_batch_size_count") == 12
    assert metric(scrape, "ingest_batch_size_sum") == 12


def test_batch_item_the_database_refuses_is_rejected_alone(poisonable_database, tmp_path):
    items = [payload_a(), payload_a(contentId="poison"), payload_a()]
    env = server_env(poisonable_database)
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        response = api.post("/v1/sessions/batch", json=items)

    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["stored", "rejected", "stored"]
    assert body["results"][1]["error"]["code"] == "INVALID_SCHEMA"
    assert (body["stored"], body["rejected"], body["failed"]) == (2, 1, 0)
    stored = {
        r["session_id"]
        for r in Database(poisonable_database).query("SELECT session_id FROM sessions")
    }
    assert stored == {items[0]["sessionId"], items[2]["sessionId"]}
