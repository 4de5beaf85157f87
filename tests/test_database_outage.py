"""PostgreSQL unreachable or frozen: 503 DATABASE_ERROR with Retry-After before the phone
gives up, never a 2xx for a session that was not stored, nothing stored later for a request
answered 503, a stop on time whatever the database does, and recovery by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.config import DatabaseUrl
from service.errors import DatabaseUnavailable
from service.session_row import SessionRow, to_row
from service.store import SessionStore
from service.summary import validate_summary
from service.writer import BatchWriter
from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer, TcpProxy
from tests.signals import (
    SIGNAL_TIMEOUT,
    metric,
    scrape,
    wait_until,
    wait_until_service_idle,
)
from tests.test_writer import post_in_background

# The SDK's read timeout: an answer must come before it, or the phone never hears the 503.
SDK_READ_TIMEOUT = 10


@pytest.fixture
def proxy(database_url: DatabaseUrl):
    proxy = TcpProxy(database_url.host, database_url.port)
    yield proxy
    proxy.close()


def behind(proxy: TcpProxy, url: DatabaseUrl) -> DatabaseUrl:
    return DatabaseUrl(url.user, url.password, "127.0.0.1", proxy.port, url.database)


@pytest.fixture
def server_behind_proxy(database_url, proxy, tmp_path):
    env = server_env(behind(proxy, database_url), M3W_DB_TIMEOUT_SECONDS="2")
    with RunningServer(env, tmp_path / "server.log") as server:
        yield server


def wait_until_ready(api) -> None:
    wait_until(lambda: api.get("/health/ready").status_code == 200, "ready again")


def test_outage_answers_503_then_recovers(server_behind_proxy, proxy, db):
    with server_behind_proxy.client(TEST_API_KEY) as api:
        before = payload_a()
        assert api.post("/v1/sessions", json=before).status_code == 200

        proxy.cut()
        lost = payload_a()
        response = api.post("/v1/sessions", json=lost, timeout=SDK_READ_TIMEOUT)

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "DATABASE_ERROR"
        assert int(response.headers["Retry-After"]) > 0
        batch = api.post("/v1/sessions/batch", json=[payload_a(), payload_a(sessionId="")])
        assert batch.status_code == 503
        assert batch.json()["error"]["code"] == "DATABASE_ERROR"
        assert "Retry-After" in batch.headers
        assert [r["status"] for r in batch.json()["error"]["results"]] == ["failed", "rejected"]
        assert api.get("/health").status_code == 200
        ready = api.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "DATABASE_ERROR"

        proxy.restore()
        wait_until_ready(api)
        after = payload_a()
        assert api.post("/v1/sessions", json=after).status_code == 200
        scraped = scrape(server_behind_proxy.url)

    stored = {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    assert stored == {before["sessionId"], after["sessionId"]}
    # Each session not stored is counted, the batch's items included.
    assert metric(scraped, 'sessions_rejected_total{reason="database_error"}') == 1 + 1
    assert metric(scraped, 'sessions_rejected_total{reason="invalid_schema"}') == 1


def test_frozen_database_answers_503_in_bounded_time_then_recovers(server_behind_proxy, proxy, db):
    with server_behind_proxy.client(TEST_API_KEY) as api:
        assert api.post("/v1/sessions", json=payload_a()).status_code == 200

        proxy.freeze()
        response = api.post("/v1/sessions", json=payload_a(), timeout=SDK_READ_TIMEOUT)

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "DATABASE_ERROR"

        proxy.restore()
        wait_until_ready(api)
        assert api.post("/v1/sessions", json=payload_a()).status_code == 200


def test_batches_answered_503_in_a_freeze_are_not_stored_when_it_ends(
    database_url, proxy, db, tmp_path
):
    env = server_env(behind(proxy, database_url), M3W_DB_TIMEOUT_SECONDS="1")
    batches = [[payload_a() for _ in range(20)] for _ in range(8)]
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        warm = [payload_a()]
        assert api.post("/v1/sessions/batch", json=warm).status_code == 200

        proxy.freeze()
        with ThreadPoolExecutor(len(batches)) as pool:
            answers = post_in_background(pool, server.url, batches, "/v1/sessions/batch")
            refused = [answer.result(timeout=SDK_READ_TIMEOUT) for answer in answers]
        proxy.restore()
        wait_until_ready(api)

        fresh = [payload_a() for _ in range(20)]
        response = api.post("/v1/sessions/batch", json=fresh)
        # Whatever the service still had running for the refused batches has ended now.
        wait_until_service_idle(db.url)
        scraped = scrape(server.url)

    for answer in refused:
        assert answer.status_code == 503
        assert {r["status"] for r in answer.json()["error"]["results"]} == {"failed"}
    assert response.status_code == 200
    stored = {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    assert stored == {item["sessionId"] for item in warm + fresh}
    assert metric(scraped, "ingest_queue_depth") == 0
    assert metric(scraped, 'sessions_rejected_total{reason="database_error"}') == 8 * 20


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_while_the_database_is_frozen_stops_in_time(
    database_url, proxy, db, tmp_path, workers
):
    """Stopped while a commit is stuck in the socket of a frozen PostgreSQL: the processes
    exit a few seconds past GRACEFUL_SHUTDOWN_TIMEOUT, not when the database wakes up."""
    grace = 1
    env = server_env(behind(proxy, database_url), GRACEFUL_SHUTDOWN_TIMEOUT=str(grace))
    server = RunningServer(env, tmp_path / "server.log", workers=workers)
    try:
        acknowledged = [payload_a() for _ in range(4)]
        with server.client(TEST_API_KEY) as api:
            for body in acknowledged:
                assert api.post("/v1/sessions", json=body).status_code == 200
        proxy.freeze()
        with ThreadPoolExecutor(1) as pool:
            (in_flight,) = post_in_background(pool, server.url, [payload_a()])
            assert proxy.holding.wait(SIGNAL_TIMEOUT), "the commit never reached the database"

            # Raises if the processes are still there a few seconds past the grace period.
            assert server.terminate(timeout=grace + 5) == 0, server.log()
            with contextlib.suppress(httpx.HTTPError):
                assert not in_flight.result().is_success
    finally:
        proxy.restore()
        if server.process.poll() is None:
            server.terminate()

    stored = {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    assert {body["sessionId"] for body in acknowledged} <= stored


def test_a_stop_answers_a_commit_held_in_a_frozen_network_only_once_it_cannot_commit(
    database_url, proxy, db
):
    """A stop that cannot drain answers 503 to a session whose statement a frozen network
    holds. The statement commits in autocommit wherever it gets to, so the stop waits until
    the statement's own deadline in PostgreSQL has passed: when the network wakes up, the
    session answered 503 is not stored."""
    timeout = 2
    store = SessionStore(behind(proxy, database_url), pool_size=1, timeout_seconds=timeout)
    writer = BatchWriter(
        store,
        max_rows=10,
        window_seconds=0,
        max_queued=10,
        max_concurrent_commits=1,
        answer_within=60,  # far past the stop: the stop, not the deadline, answers it
    )
    tenant = db.tenant()

    def row(body: dict) -> SessionRow:
        return to_row(validate_summary(body), json.dumps(body)).for_tenant(tenant)

    warm, held = payload_a(), payload_a()

    async def stop_while_frozen() -> tuple[float, BaseException | None]:
        await writer.write(row(warm))  # the clock offset is measured, the pool connected
        proxy.freeze()
        write = asyncio.create_task(writer.write(row(held)))
        await asyncio.to_thread(proxy.holding.wait, SIGNAL_TIMEOUT)
        assert proxy.holding.is_set(), "the statement never reached the database"
        began = time.monotonic()
        await writer.close(timeout=0.1)
        answered_after = time.monotonic() - began
        (outcome,) = await asyncio.gather(write, return_exceptions=True)
        return answered_after, outcome

    try:
        answered_after, outcome = asyncio.run(stop_while_frozen())
        proxy.restore()  # the held statement reaches PostgreSQL now
        wait_until_service_idle(database_url)
    finally:
        proxy.restore()
        store.close()
    assert isinstance(outcome, DatabaseUnavailable)
    assert db.session(warm["sessionId"]) is not None
    assert db.session(held["sessionId"]) is None
    assert db.count() == 1
    # The stop itself took its 0.1 s; the rest was the wait for the statement's deadline.
    assert 1 < answered_after < timeout + 2
