"""Configuration: every DATABASE_URL form users bring, and fail-fast messages naming the
variable to fix."""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg
import pytest
from psycopg import sql

from service.config import ConfigError, load_settings, parse_database_url
from tests.conftest import TEST_API_KEY
from tests.payloads import payload_a
from tests.servers import REPO, RunningServer

# (form, environment, SQLAlchemy URL, libpq URL for dbmate/psql)
URL_FORMS = [
    (
        "postgres://",
        {"DATABASE_URL": "postgres://app:s3cret@db.example:6543/qoe"},
        "postgresql+psycopg://app:s3cret@db.example:6543/qoe",
        "postgres://app:s3cret@db.example:6543/qoe?sslmode=prefer",
    ),
    (
        "postgresql:// without port",
        {"DATABASE_URL": "postgresql://app@db/qoe"},
        "postgresql+psycopg://app@db:5432/qoe",
        "postgres://app@db:5432/qoe?sslmode=prefer",
    ),
    (
        "postgresql+psycopg:// with sslmode",
        {"DATABASE_URL": "postgresql+psycopg://app:pw@db:5432/qoe?sslmode=require"},
        "postgresql+psycopg://app:pw@db:5432/qoe?sslmode=require",
        "postgres://app:pw@db:5432/qoe?sslmode=require",
    ),
    (
        "JDBC with DATABASE_USER/PASSWORD",
        {
            "DATABASE_URL": "jdbc:postgresql://db.example:5432/media3watch",
            "DATABASE_USER": "m3w",
            "DATABASE_PASSWORD": "p@ss:w/rd",
        },
        "postgresql+psycopg://m3w:p%40ss%3Aw%2Frd@db.example:5432/media3watch",
        "postgres://m3w:p%40ss%3Aw%2Frd@db.example:5432/media3watch?sslmode=prefer",
    ),
    (
        "JDBC with user and password in the query",
        {"DATABASE_URL": "jdbc:postgresql://db:5432/qoe?user=m3w&password=pw&ssl=true"},
        "postgresql+psycopg://m3w:pw@db:5432/qoe?ssl=true",
        "postgres://m3w:pw@db:5432/qoe?ssl=true&sslmode=prefer",
    ),
    (
        "DATABASE_USER overrides the URL's user",
        {"DATABASE_URL": "postgres://old:pw@db/qoe", "DATABASE_USER": "new"},
        "postgresql+psycopg://new:pw@db:5432/qoe",
        "postgres://new:pw@db:5432/qoe?sslmode=prefer",
    ),
]


@pytest.mark.parametrize(
    ("env", "sqlalchemy", "libpq"), [c[1:] for c in URL_FORMS], ids=[c[0] for c in URL_FORMS]
)
def test_database_url_forms(env, sqlalchemy, libpq):
    url = parse_database_url(env)

    assert url.sqlalchemy == sqlalchemy
    assert url.libpq == libpq
    assert "s3cret" not in url.redacted()


JDBC_ROLE, JDBC_PASSWORD = "m3w_jdbc_test", "p@ss:w/rd 'quoted'"


@pytest.fixture(scope="module")
def role_with_password(database_url):
    """A login role that must give its password (the suite's PostgreSQL asks every
    connection for one), with the service's privileges."""
    with psycopg.connect(database_url.libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(JDBC_ROLE)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE m3w_ingest").format(
                sql.Identifier(JDBC_ROLE), sql.Literal(JDBC_PASSWORD)
            )
        )
    return JDBC_ROLE


@pytest.mark.parametrize(("password", "stored"), [(JDBC_PASSWORD, True), ("wrong", False)])
def test_jdbc_url_with_separate_credentials_serves_for_real(
    database_url, db, tmp_path, role_with_password, password, stored
):
    env = {
        "DATABASE_URL": f"jdbc:postgresql://{database_url.host}:{database_url.port}/"
        f"{database_url.database}?user=someone-else&password=not-this-one",
        "DATABASE_USER": role_with_password,
        "DATABASE_PASSWORD": password,
        "M3W_API_KEY": TEST_API_KEY,
    }
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        assert api.get("/health/ready").status_code == (200 if stored else 503)
        response = api.post("/v1/sessions", json=payload_a())
        assert response.status_code == (200 if stored else 503)
        # The service's pooled connections log in as DATABASE_USER, not the URL's user.
        logged_in = db.query(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE usename IN (%s, 'someone-else')",
            JDBC_ROLE,
        )
        assert logged_in == ([{"usename": JDBC_ROLE}] if stored else [])
    assert db.count() == (1 if stored else 0)


def test_migrations_may_use_their_own_credentials():
    env = {
        "DATABASE_URL": "postgres://m3w_service:s@db:5432/qoe",
        "DATABASE_USER": "m3w_service",
        "DATABASE_PASSWORD": "service-pw",
        "M3W_MIGRATE_DATABASE_URL": "jdbc:postgresql://db:5432/qoe?user=m3w_owner&password=o",
    }
    settings = load_settings(env)

    assert settings.database_url.user == "m3w_service"
    # DATABASE_USER and DATABASE_PASSWORD are the service's: they do not apply here.
    assert (settings.migrate_database_url.user, settings.migrate_database_url.password) == (
        "m3w_owner",
        "o",
    )
    assert load_settings({}).migrate_database_url is None


def test_defaults():
    settings = load_settings({})

    assert settings.api_key == "dev-key"
    assert settings.database_url is None
    assert (settings.port, settings.workers, settings.max_body_bytes) == (8080, 2, 65536)
    assert settings.host == "0.0.0.0"
    assert settings.exposes_default_key(settings.host)


@pytest.mark.parametrize(
    ("env", "host", "exposed"),
    [
        ({}, "0.0.0.0", True),
        ({}, "192.168.1.20", True),
        ({}, "127.0.0.1", False),
        ({}, "localhost", False),
        ({}, "::1", False),
        ({"M3W_API_KEY": "long-secret"}, "0.0.0.0", False),
    ],
)
def test_default_key_is_flagged_only_where_others_can_reach_it(env, host, exposed):
    assert load_settings(env).exposes_default_key(host) is exposed


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_server_warns_loudly_about_the_default_key_on_a_public_bind(
    database_url, tmp_path, host, warned
):
    env = {"DATABASE_URL": database_url.libpq, "M3W_API_KEY": "dev-key"}
    with RunningServer(env, tmp_path / "server.log", host=host) as server:
        assert httpx.get(server.url + "/health").status_code == 200
    assert ("M3W_API_KEY is the public default" in server.log()) is warned


# (environment, the variable the message must name)
BAD_SETTINGS = [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"M3W_WORKERS": "0"}, "M3W_WORKERS"),
    ({"M3W_MAX_BODY_BYTES": "-1"}, "M3W_MAX_BODY_BYTES"),
    ({"M3W_DB_POOL_SIZE": "many"}, "M3W_DB_POOL_SIZE"),
    ({"M3W_API_KEY": "  "}, "M3W_API_KEY"),
    ({"M3W_API_KEY": "secret "}, "M3W_API_KEY"),
    ({"M3W_API_KEY": "\tsecret"}, "M3W_API_KEY"),
    ({"DATABASE_URL": "mysql://db/qoe"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgres:///qoe"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgres://db"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgres://db:port/qoe"}, "DATABASE_URL"),
    ({"M3W_MIGRATE_DATABASE_URL": "mysql://db/qoe"}, "M3W_MIGRATE_DATABASE_URL"),
]


@pytest.mark.parametrize(("env", "variable"), BAD_SETTINGS)
def test_bad_settings_fail_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_m3w_refuses_to_start_on_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "PORT must be a whole number" in result.stderr


def test_sanic_factory_without_database_url_says_what_to_set():
    result = subprocess.run(
        [sys.executable, "-m", "sanic", "service.app:create_app", "--factory", "--single-process"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stdout + result.stderr
