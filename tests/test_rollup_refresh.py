"""The rollup refresh has a connection and a thread of its own, and is cancelled at stop: a
refresh in the middle of a backlog neither starves the commits nor holds up a shutdown.

A stand-in refresh_qoe_rollups() that sleeps plays the long refresh, in a database of its
own; the signal that it runs is PostgreSQL's pg_stat_activity."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from service.keys import Tenant
from service.session_row import to_row
from service.store import SessionStore
from service.summary import validate_summary
from tests.conftest import TEST_API_KEY, Database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.signals import service_backends, wait_until

REFRESHING = "position('refresh_qoe_rollups' in query) > 0 AND state = 'active'"


@pytest.fixture
def slow_refresh_database(postgres_server):
    url = migrated_database(postgres_server, "m3w_slow_refresh_stop")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute("DROP FUNCTION refresh_qoe_rollups()")
        conn.execute(
            "CREATE FUNCTION refresh_qoe_rollups() RETURNS integer LANGUAGE sql "
            "AS 'SELECT 7 FROM pg_sleep(120)'"
        )
    return url


def refreshing(url) -> bool:
    return bool(service_backends(url, REFRESHING))


def row(**overrides):
    body = payload_a(**overrides)
    # A freshly migrated database's first tenant is `default` (what M3W_API_KEY writes as).
    return to_row(validate_summary(body), json.dumps(body)).for_tenant(Tenant(1, "default"))


def test_refresh_takes_no_connection_of_the_commits_and_is_cancelled(slow_refresh_database):
    url = slow_refresh_database

    async def scenario() -> None:
        # One pooled connection and one thread for commits: a refresh on them starves them.
        store = SessionStore(url, pool_size=1, timeout_seconds=2)
        try:
            refresh = asyncio.create_task(store.refresh_rollups(timeout_seconds=3600))
            await asyncio.to_thread(wait_until, lambda: refreshing(url), "refresh running")

            assert await store.upsert([row()]) == 1

            refresh.cancel()  # as stopping the worker cancels the refresh task
            with pytest.raises(asyncio.CancelledError):
                await refresh
            await asyncio.to_thread(
                wait_until, lambda: not refreshing(url), "refresh cancelled in PostgreSQL"
            )

            again = asyncio.create_task(store.refresh_rollups(timeout_seconds=3600))
            await asyncio.to_thread(wait_until, lambda: refreshing(url), "refresh running")
        finally:
            store.close()
        await asyncio.to_thread(
            wait_until, lambda: not refreshing(url), "refresh cancelled by close()"
        )
        again.cancel()

    asyncio.run(scenario())
    assert Database(url).count() == 1


def test_a_long_refresh_does_not_hold_up_the_shutdown(slow_refresh_database, tmp_path):
    url = slow_refresh_database
    grace = 2
    env = server_env(url, M3W_ROLLUP_REFRESH_SECONDS="1", GRACEFUL_SHUTDOWN_TIMEOUT=str(grace))
    server = RunningServer(env, tmp_path / "server.log")
    try:
        with server.client(TEST_API_KEY) as api:
            body = payload_a()
            assert api.post("/v1/sessions", json=body).status_code == 200
        wait_until(lambda: refreshing(url), "the service's refresh running")

        # Raises if the process is still there a few seconds past the grace period.
        assert server.terminate(timeout=grace + 5) == 0, server.log()
        # Stopping is routine: cancelling the refresh is no warning.
        assert "cancelled before it completed" not in server.log()
    finally:
        if server.process.poll() is None:
            server.terminate()
    wait_until(lambda: not refreshing(url), "the refresh cancelled in PostgreSQL")
    assert Database(url).session(body["sessionId"]) is not None
