"""Group commit through real servers: merged duplicates, a poisoned row failing alone,
backpressure for single sessions and batches, and what the metrics say about the batches.

Which requests share a transaction is made certain, not left to timing: a table lock holds
the commit of a first request while the others queue behind it (one commit slot), and the
test lets go once /metrics shows them queued.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import psycopg
import pytest

from service.errors import DatabaseUnavailable
from service.session_row import to_row
from service.store import COMMIT_MARGIN_SECONDS, SessionStore
from service.summary import validate_summary
from tests.conftest import TEST_API_KEY, Database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.signals import (
    metric,
    metric_or_zero,
    scrape,
    sessions_locked,
    wait_for_commits_blocked,
    wait_for_metric,
    wait_until,
    wait_until_service_idle,
)

# One commit at a time, and a commit timeout far beyond what the held lock takes.
ONE_COMMIT_SLOT = {"M3W_DB_POOL_SIZE": "1", "M3W_DB_TIMEOUT_SECONDS": "30"}


async def post_all(
    url: str, bodies: list[dict], path: str = "/v1/sessions"
) -> list[httpx.Response]:
    """Send every body at once, each on its own connection, as many phones would."""
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": TEST_API_KEY}, timeout=30
    ) as client:
        return await asyncio.gather(*(client.post(path, json=body) for body in bodies))


def post_in_background(
    pool: ThreadPoolExecutor, url: str, bodies: list, path: str = "/v1/sessions"
) -> list[Future[httpx.Response]]:
    def post(body: object) -> httpx.Response:
        return httpx.post(url + path, json=body, headers={"X-API-Key": TEST_API_KEY}, timeout=60)

    return [pool.submit(post, body) for body in bodies]


def queued_behind_a_held_commit(
    server: RunningServer, database, bodies: list[dict], queued: int
) -> list[httpx.Response]:
    """Post a first session whose commit waits on a table lock, then `bodies` at once; let
    the lock go once `queued` of them wait in the queue. Returns the answers to `bodies`."""
    with ThreadPoolExecutor(len(bodies) + 1) as pool, sessions_locked(database):
        (first,) = post_in_background(pool, server.url, [payload_a()])
        wait_for_commits_blocked(database)
        answers = post_in_background(pool, server.url, bodies)
        wait_for_metric(server.url, "ingest_queue_depth", queued)
    assert first.result().status_code == 200
    return [answer.result() for answer in answers]


@pytest.fixture
def one_slot_server(database_url, tmp_path):
    env = server_env(database_url, M3W_BATCH_MAX_ROWS="1000", **ONE_COMMIT_SLOT)
    with RunningServer(env, tmp_path / "server.log") as server:
        yield server


def test_one_batch_merges_duplicate_ids_newest_wins(one_slot_server, db):
    bodies = [
        payload_a(sessionId="dup", timestamp=1_771_149_600_000 + i, playTimeMs=i)
        for i in (3, 1, 4, 2)
    ] + [payload_a() for _ in range(6)]

    responses = queued_behind_a_held_commit(one_slot_server, db.url, bodies, queued=10)

    assert [r.status_code for r in responses] == [200] * 10
    assert db.session("dup")["play_time_ms"] == 4
    assert db.count() == 1 + 7
    scraped = scrape(one_slot_server.url)
    assert metric(scraped, "ingest_batch_size_count") == 2  # the held one, then all ten
    assert metric(scraped, "ingest_batch_size_sum") == 1 + 7  # duplicates merged into one row
    assert metric(scraped, "sessions_ingested_total") == 1 + 10  # every request acknowledged


@pytest.fixture
def poisonable_database(postgres_server):
    """A database that refuses one particular row, as PostgreSQL refuses data it cannot
    store (validation lets nothing like it through, so the test plants the refusal), and
    fails a whole statement with an error that is not about the data for another."""
    url = migrated_database(postgres_server, "m3w_poison")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE sessions ADD CONSTRAINT refuse_poison "
            "CHECK (content_id IS DISTINCT FROM 'poison')"
        )
        conn.execute(
            "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.content_id = 'boom' THEN RAISE EXCEPTION 'internal trouble'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail_boom BEFORE INSERT ON sessions "
            "FOR EACH ROW EXECUTE FUNCTION fail_boom()"
        )
    return url


def stored_ids(url) -> set[str]:
    return {r["session_id"] for r in Database(url).query("SELECT session_id FROM sessions")}


def assert_refusal_is_generic(error: dict, session_id: str) -> None:
    """The client learns which session, not PostgreSQL's text (constraint names, values)."""
    assert error["code"] == "INVALID_SCHEMA"
    text = str(error)
    assert session_id in error["message"]
    for internal in ("refuse_poison", "constraint", "violates", "Failing row", "poison'"):
        assert internal not in text


def test_a_row_the_database_refuses_fails_alone(poisonable_database, tmp_path):
    env = server_env(poisonable_database, M3W_BATCH_MAX_ROWS="1000", **ONE_COMMIT_SLOT)
    good = [payload_a() for _ in range(7)]
    poison = payload_a(contentId="poison")
    with RunningServer(env, tmp_path / "server.log") as server:
        responses = queued_behind_a_held_commit(
            server, poisonable_database, [*good[:3], poison, *good[3:]], queued=8
        )
        scraped = scrape(server.url)
        log = server.log()

    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 400, 200, 200, 200, 200]
    assert_refusal_is_generic(responses[3].json()["error"], poison["sessionId"])
    assert "refuse_poison" in log  # what PostgreSQL said stays on the server
    assert {body["sessionId"] for body in good} <= stored_ids(poisonable_database)
    assert poison["sessionId"] not in stored_ids(poisonable_database)
    assert metric(scraped, "sessions_ingested_total") == 1 + 7
    assert metric(scraped, 'sessions_rejected_total{reason="invalid_schema"}') == 1
    # One refused row is one database error, not one per split on the way to isolating it.
    assert metric(scraped, "database_errors_total") == 1


def test_full_queue_answers_503_with_retry_after(database_url, db, tmp_path):
    env = server_env(database_url, M3W_QUEUE_MAX_ROWS="3", **ONE_COMMIT_SLOT)
    bodies = [payload_a() for _ in range(8)]
    with RunningServer(env, tmp_path / "server.log") as server:
        with ThreadPoolExecutor(9) as pool, sessions_locked(db.url):
            post_in_background(pool, server.url, [payload_a()])
            wait_for_commits_blocked(db.url)
            answers = post_in_background(pool, server.url, bodies)
            wait_until(lambda: sum(a.done() for a in answers) == 5, "five answered at once")
            refused = [a.result() for a in answers if a.done()]
            assert metric(scrape(server.url), "ingest_queue_depth") == 3
        responses = [a.result() for a in answers]
        scraped = scrape(server.url)

    accepted = [b["sessionId"] for b, r in zip(bodies, responses, strict=True) if r.is_success]
    assert len(accepted) == 3
    assert len(refused) == 5
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "QUEUE_FULL"
        assert int(response.headers["Retry-After"]) >= 1
    assert set(accepted) <= {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    assert db.count() == 1 + 3
    assert metric(scraped, 'sessions_rejected_total{reason="queue_full"}') == 5


def test_a_batch_takes_its_place_in_the_same_bounded_queue(database_url, db, tmp_path):
    """POST /v1/sessions/batch counts against M3W_QUEUE_MAX_ROWS like single sessions."""
    env = server_env(database_url, M3W_QUEUE_MAX_ROWS="3", **ONE_COMMIT_SLOT)
    batch = [payload_a(), payload_a()]
    with RunningServer(env, tmp_path / "server.log") as server:
        with ThreadPoolExecutor(4) as pool, sessions_locked(db.url):
            post_in_background(pool, server.url, [payload_a()])
            wait_for_commits_blocked(db.url)
            singles = post_in_background(pool, server.url, [payload_a(), payload_a()])
            wait_for_metric(server.url, "ingest_queue_depth", 2)
            (refused,) = post_in_background(pool, server.url, [batch], "/v1/sessions/batch")
            # Answered at once, while the commit ahead of it is still held.
            response = refused.result(timeout=20)
            assert metric(scrape(server.url), "ingest_queue_depth") == 2
        assert [s.result().status_code for s in singles] == [200, 200]
        scraped = scrape(server.url)

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "QUEUE_FULL"
    assert int(response.headers["Retry-After"]) >= 1
    assert [r["status"] for r in error["results"]] == ["failed", "failed"]
    assert not {item["sessionId"] for item in batch} & stored_ids(db.url)
    assert db.count() == 3
    assert metric(scraped, 'sessions_rejected_total{reason="queue_full"}') == 2


def test_group_commit_off_commits_each_session_alone(database_url, db, tmp_path):
    env = server_env(database_url, M3W_BATCH_MAX_ROWS="1")
    with RunningServer(env, tmp_path / "server.log") as server:
        responses = asyncio.run(post_all(server.url, [payload_a() for _ in range(12)]))
        scraped = scrape(server.url)

    assert [r.status_code for r in responses] == [200] * 12
    assert db.count() == 12
    assert metric(scraped, "ingest_batch_size_count") == 12
    assert metric(scraped, "ingest_batch_size_sum") == 12


def test_batch_item_the_database_refuses_is_rejected_alone(poisonable_database, tmp_path):
    items = [payload_a(), payload_a(contentId="poison"), payload_a()]
    env = server_env(poisonable_database)
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        response = api.post("/v1/sessions/batch", json=items)
        scraped = scrape(server.url)
        log = server.log()

    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["stored", "rejected", "stored"]
    assert_refusal_is_generic(body["results"][1]["error"], items[1]["sessionId"])
    assert "refuse_poison" in log
    assert (body["stored"], body["rejected"], body["failed"]) == (2, 1, 0)
    assert stored_ids(poisonable_database) == {items[0]["sessionId"], items[2]["sessionId"]}
    assert metric(scraped, 'sessions_rejected_total{reason="invalid_schema"}') == 1
    assert metric(scraped, "database_errors_total") == 1
    assert metric(scraped, "sessions_ingested_total") == 2


def test_a_failed_batch_commit_that_is_not_the_data_answers_non_2xx(poisonable_database, tmp_path):
    """A commit failing for a reason other than the data (here a trigger raising) means the
    items must be sent again: never a 200."""
    items = [payload_a(), payload_a(contentId="boom")]
    with (
        RunningServer(server_env(poisonable_database), tmp_path / "server.log") as server,
        server.client(TEST_API_KEY) as api,
    ):
        response = api.post("/v1/sessions/batch", json=items)
        scraped = scrape(server.url)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert "internal trouble" not in response.text
    assert [r["status"] for r in error["results"]] == ["failed", "failed"]
    assert stored_ids(poisonable_database) == set()
    assert metric(scraped, 'sessions_rejected_total{reason="internal_error"}') == 2
    assert metric(scraped, "database_errors_total") == 1
    assert metric_or_zero(scraped, "sessions_ingested_total") == 0


@pytest.mark.parametrize("time_left", ["plenty", "too little"])
def test_an_upsert_commits_only_while_its_client_still_waits(database_url, db, time_left):
    """An upsert held up (a table lock) until its deadline is within COMMIT_MARGIN_SECONDS
    does not commit: its client is being answered 503 and told to send it again. With time
    left, the same upsert commits once the lock goes."""
    store = SessionStore(database_url, pool_size=1, timeout_seconds=30)
    body = payload_a()
    row = to_row(validate_summary(body), json.dumps(body)).for_tenant(db.tenant())

    async def attempt() -> int:
        deadline = time.monotonic() + (60 if time_left == "plenty" else 2)
        with sessions_locked(database_url):
            outcome = store.start_upsert([row], deadline)
            await asyncio.to_thread(wait_for_commits_blocked, database_url)
            if time_left == "too little":
                await asyncio.to_thread(
                    wait_until,
                    lambda: time.monotonic() >= deadline - COMMIT_MARGIN_SECONDS,
                    "the last moment to commit has passed",
                )
        return await asyncio.wait_for(outcome, timeout=30)

    try:
        if time_left == "plenty":
            assert asyncio.run(attempt()) == 1
            assert db.session(body["sessionId"]) is not None
        else:
            with pytest.raises(DatabaseUnavailable):
                asyncio.run(attempt())
            wait_until_service_idle(database_url)  # the transaction has ended
            assert db.count() == 0
    finally:
        store.close()
