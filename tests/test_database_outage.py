"""PostgreSQL unreachable: 503 DATABASE_ERROR with Retry-After, quickly, never a 2xx for a
session that was not stored; the service recovers by itself when PostgreSQL is back."""

from __future__ import annotations

import time

import pytest

from service.config import DatabaseUrl
from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer, TcpProxy


@pytest.fixture
def proxy(database_url: DatabaseUrl):
    proxy = TcpProxy(database_url.host, database_url.port)
    yield proxy
    proxy.close()


@pytest.fixture
def server_behind_proxy(database_url, proxy, tmp_path):
    via_proxy = DatabaseUrl(
        database_url.user, database_url.password, "127.0.0.1", proxy.port, database_url.database
    )
    env = server_env(via_proxy, M3W_DB_TIMEOUT_SECONDS="2")
    with RunningServer(env, tmp_path / "server.log") as server:
        yield server


def test_outage_answers_503_then_recovers(server_behind_proxy, proxy, db):
    with server_behind_proxy.client(TEST_API_KEY) as api:
        before = payload_a()
        assert api.post("/v1/sessions", json=before).status_code == 200

        proxy.cut()
        lost = payload_a()
        began = time.monotonic()
        response = api.post("/v1/sessions", json=lost)
        elapsed = time.monotonic() - began

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "DATABASE_ERROR"
        assert int(response.headers["Retry-After"]) > 0
        assert elapsed < 10
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
        after = payload_a()
        assert api.post("/v1/sessions", json=after).status_code == 200
        assert api.get("/health/ready").status_code == 200

    stored = {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    assert stored == {before["sessionId"], after["sessionId"]}


def test_frozen_database_answers_503_in_bounded_time_then_recovers(server_behind_proxy, proxy, db):
    with server_behind_proxy.client(TEST_API_KEY) as api:
        assert api.post("/v1/sessions", json=payload_a()).status_code == 200

        proxy.freeze()
        began = time.monotonic()
        response = api.post("/v1/sessions", json=payload_a())
        elapsed = time.monotonic() - began

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "DATABASE_ERROR"
        assert elapsed < 2 * 2 + 2 + 1  # M3W_DB_TIMEOUT_SECONDS=2: answered, not hung

        proxy.restore()
        deadline = time.monotonic() + 15
        while (status := api.post("/v1/sessions", json=payload_a()).status_code) != 200:
            assert time.monotonic() < deadline, f"no recovery after the freeze (last {status})"
            time.sleep(0.5)
