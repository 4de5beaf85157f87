"""The service keeps the dashboard rollups fresh by itself (M3W_ROLLUP_REFRESH_SECONDS)."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from service.errors import DatabaseUnavailable
from service.store import SessionStore
from tests.conftest import TEST_API_KEY, create_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer


def test_service_refreshes_the_rollups_it_dirtied(database_url, db, tmp_path):
    env = server_env(database_url, M3W_ROLLUP_REFRESH_SECONDS="1")
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        for _ in range(5):
            assert api.post("/v1/sessions", json=payload_a()).status_code == 200
        deadline = time.monotonic() + 10
        while db.query("SELECT count(*) AS n FROM qoe_rollup_dirty_hours")[0]["n"]:
            assert time.monotonic() < deadline, "the rollups were never refreshed"
            time.sleep(0.2)

    rolled_up = db.query(
        "SELECT sum(sessions) AS n FROM qoe_hourly_rollup WHERE hour = '2026-02-15T10:00Z'"
    )
    assert rolled_up == [{"n": 5}]


def test_refresh_may_outlast_the_statement_timeout(postgres_server):
    """A refresh catching up on a backlog runs longer than a commit may: it has its own
    timeout. Here a stand-in refresh sleeps past M3W_DB_TIMEOUT_SECONDS=1."""
    url = create_database(postgres_server, "m3w_slow_refresh")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refresh_qoe_rollups() RETURNS integer LANGUAGE sql "
            "AS 'SELECT 7 FROM pg_sleep(1.5)'"
        )
    store = SessionStore(url, pool_size=1, timeout_seconds=1)
    try:
        assert asyncio.run(store.refresh_rollups(timeout_seconds=5)) == 7
        with pytest.raises(DatabaseUnavailable):  # the same work under the commit timeout
            asyncio.run(store.refresh_rollups(timeout_seconds=1))
    finally:
        store.close()
