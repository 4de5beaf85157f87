"""Configuration: every DATABASE_URL form users bring, and fail-fast messages naming the
variable to fix."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from service.config import ConfigError, DatabaseUrl, load_settings, parse_database_url
from service.migrations import dbmate
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
        "IPv6 host, percent-encoded password",
        {"DATABASE_URL": "postgresql://app:p%2Fw%20d%40x@[::1]:5432/qoe"},
        "postgresql+psycopg://app:p%2Fw d%40x@[::1]:5432/qoe",
        "postgres://app:p%2Fw%20d%40x@[::1]:5432/qoe?sslmode=prefer",
    ),
    (
        "password pasted with an unescaped @",
        {"DATABASE_URL": "postgres://app:p@ss@db/qoe"},
        "postgresql+psycopg://app:p%40ss@db:5432/qoe",
        "postgres://app:p%40ss@db:5432/qoe?sslmode=prefer",
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


# Users and passwords that need escaping in a URL, and an IPv6 host.
TRICKY = [
    DatabaseUrl("m3w", "p@ss:w/rd 'quoted' 100%+ü", "db.example", 6543, "media3watch"),
    DatabaseUrl("user@corp", "a#b?c&d=e", "::1", 5432, "qoe", (("sslmode", "require"),)),
    DatabaseUrl("m3w", None, "fe80::1", 5432, "qoe"),
]


@pytest.mark.parametrize("url", TRICKY, ids=["punctuation", "ipv6-query", "no-password"])
def test_every_spelling_gives_each_tool_the_same_credentials(url):
    """SQLAlchemy reads back `.sqlalchemy`, libpq (psycopg's parser) reads back `.libpq`,
    and our parser reads back both."""
    alchemy = make_url(url.sqlalchemy)
    libpq = conninfo_to_dict(url.libpq)

    assert (alchemy.username, alchemy.password, alchemy.host) == (url.user, url.password, url.host)
    assert (alchemy.port, alchemy.database) == (url.port, url.database)
    assert (libpq["user"], libpq.get("password"), libpq["host"]) == (
        url.user,
        url.password,
        url.host,
    )
    assert (libpq["port"], libpq["dbname"]) == (str(url.port), url.database)
    assert parse_database_url({"DATABASE_URL": url.sqlalchemy}) == url
    with_sslmode = url.query if dict(url.query).get("sslmode") else (("sslmode", "prefer"),)
    assert parse_database_url({"DATABASE_URL": url.libpq}) == replace(url, query=with_sslmode)


# (URL, what redacted() prints): the password is *** literally, never %2A%2A%2A
REDACTED = [
    (
        DatabaseUrl("app", "s3cret", "db", 5432, "qoe"),
        "postgres://app:***@db:5432/qoe",
    ),
    (
        DatabaseUrl("app", "p@ss:w/rd", "::1", 6543, "qoe", (("sslmode", "require"),)),
        "postgres://app:***@[::1]:6543/qoe?sslmode=require",
    ),
    (DatabaseUrl("app", None, "db", 5432, "qoe"), "postgres://app@db:5432/qoe"),
    (DatabaseUrl("app", "", "db", 5432, "qoe"), "postgres://app@db:5432/qoe"),
    (DatabaseUrl(None, None, "db", 5432, "qoe"), "postgres://db:5432/qoe"),
]


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_redacted_hides_only_the_password(url, shown):
    assert url.redacted() == shown
    assert not url.password or url.password not in repr(url)


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


def test_dbmate_and_libpq_log_in_with_a_password_that_needs_escaping(
    database_url, role_with_password
):
    # The password has a space, @, :, / and quotes: dbmate (Go's net/url) refuses a URL
    # whose password holds a bare space, so `.libpq` must escape every one of them.
    url = DatabaseUrl(
        role_with_password,
        JDBC_PASSWORD,
        database_url.host,
        database_url.port,
        database_url.database,
        database_url.query,
    )
    with psycopg.connect(url.libpq) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role_with_password,)
    result = dbmate(url, "status", check=False)
    assert "invalid userinfo" not in result.stderr
    assert "password authentication failed" not in result.stderr
    assert result.returncode == 0, result.stderr


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
    ({"M3W_API_KEY": ""}, "M3W_API_KEY"),  # blank is a mistake here, not the default key
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
    with pytest.raises(ConfigError, match=variable) as raised:
        load_settings(env)

    # Our words, starting with the variable; not pydantic's ("Input should be ...").
    assert str(raised.value).startswith(variable)
    assert "Input should" not in str(raised.value)
    assert "pydantic" not in str(raised.value)


# (variable, attribute, default, lowest, highest): the settings of rate limits and retention
NUMBERS = [
    ("RATE_LIMIT_REQUESTS", "rate_limit_requests", 0, 0, 1_000_000_000),
    ("RATE_LIMIT_WINDOW_SEC", "rate_limit_window_seconds", 60, 1, 86_400),
    ("RETENTION_DAYS", "retention_days", 0, 0, 36_500),
    ("M3W_RETENTION_INTERVAL_SECONDS", "retention_interval_seconds", 3600, 0, 604_800),
    ("ROLLUP_RETENTION_DAYS", "rollup_retention_days", 0, 0, 36_500),
    # and two of the older ones, for the same rules
    ("M3W_WORKERS", "workers", 2, 1, 64),
    ("PORT", "port", 8080, 1, 65535),
]


@pytest.mark.parametrize(("variable", "attribute", "default", "low", "high"), NUMBERS)
def test_numbers_have_defaults_and_inclusive_bounds(variable, attribute, default, low, high):
    assert getattr(load_settings({}), attribute) == default
    for blank in ("", "  "):  # set but empty, as compose passes `VAR=`: the default
        assert getattr(load_settings({variable: blank}), attribute) == default
    for value in (low, high):
        assert getattr(load_settings({variable: str(value)}), attribute) == value


@pytest.mark.parametrize(("variable", "attribute", "default", "low", "high"), NUMBERS)
def test_numbers_out_of_range_or_not_whole_say_what_to_set(variable, attribute, default, low, high):
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as raised:
            load_settings({variable: str(value)})
        assert str(raised.value) == f"{variable} must be between {low} and {high}, got {value}"
    for value in ("x", "1.5", "1e3", "0x10"):
        with pytest.raises(ConfigError) as raised:
            load_settings({variable: value})
        assert str(raised.value) == f"{variable} must be a whole number, got {value!r}"


def test_an_explicit_environment_replaces_os_environ(monkeypatch, tmp_path):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("RETENTION_DAYS", "30")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORT=1234\nM3W_WORKERS=7\n")  # never read

    assert (load_settings().port, load_settings().retention_days) == (9999, 30)
    assert (load_settings({}).port, load_settings({}).retention_days) == (8080, 0)
    assert load_settings({"M3W_WORKERS": "3"}).workers == 3
    assert load_settings().workers == 2


@pytest.mark.parametrize(
    ("env", "attribute", "value"),
    [
        ({"M3W_HOST": ""}, "host", "0.0.0.0"),
        ({"M3W_HOST": "127.0.0.1"}, "host", "127.0.0.1"),
        ({"DATABASE_URL": "  "}, "database_url", None),
        ({"M3W_MIGRATE_DATABASE_URL": ""}, "migrate_database_url", None),
        ({"M3W_DATA_DIR": ""}, "data_dir", REPO / ".m3w"),
        ({"M3W_DATA_DIR": "somewhere/else"}, "data_dir", REPO / "somewhere" / "else"),
        ({"port": "9999"}, "port", 8080),  # variable names are case-sensitive, as on Linux
    ],
)
def test_other_settings_and_blank_values(monkeypatch, env, attribute, value):
    monkeypatch.chdir(REPO)

    assert getattr(load_settings(env), attribute) == value


def test_settings_are_immutable_and_keep_secrets_out_of_their_repr():
    settings = load_settings(
        {
            "M3W_API_KEY": "the-api-key",
            "DATABASE_URL": "jdbc:postgresql://db:5432/qoe",
            "DATABASE_USER": "m3w",
            "DATABASE_PASSWORD": "the-db-password",
        }
    )

    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    assert "the-api-key" not in repr(settings)
    assert "the-db-password" not in repr(settings)
    assert settings.database_url.password == "the-db-password"


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
