"""db/init/roles.sql against the suite's real PostgreSQL: the three login roles of every
deploy (compose, an external database, the embedded one), what each can and cannot do, and
the service running as its role."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from service.config import DatabaseUrl
from service.embedded_db import POSTGRES_BIN_PATH, ROLES_SQL, EmbeddedPostgres, init_roles
from service.migrations import dbmate
from tests.conftest import TEST_API_KEY, create_database
from tests.payloads import payload_a
from tests.servers import REPO, RunningServer, free_port

# Characters that break naive quoting in psql, SQL and URLs.
PASSWORDS = {
    "owner_password": "owner pw:1",
    "service_password": "serv'ice\\pw@/:?#",
    "grafana_password": 'graf"ana pw%',
}
LOGIN_ROLES = {"m3w_owner": None, "m3w_service": "m3w_ingest", "m3w_grafana": "m3w_dashboards"}


@dataclass
class Roles:
    admin: DatabaseUrl
    owner: DatabaseUrl
    service: DatabaseUrl
    grafana: DatabaseUrl


def as_role(url: DatabaseUrl, role: str, password: str) -> DatabaseUrl:
    return DatabaseUrl(role, password, url.host, url.port, url.database, url.query)


def roles_on(admin: DatabaseUrl, passwords: dict[str, str] = PASSWORDS) -> Roles:
    return Roles(
        admin,
        as_role(admin, "m3w_owner", passwords["owner_password"]),
        as_role(admin, "m3w_service", passwords["service_password"]),
        as_role(admin, "m3w_grafana", passwords["grafana_password"]),
    )


def m3w_migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def roles(postgres_server: DatabaseUrl) -> Roles:
    """A new database set up as compose does it: roles.sql as the superuser, then
    `m3w migrate` as the owner (M3W_MIGRATE_DATABASE_URL), DATABASE_URL being the service's."""
    roles = roles_on(create_database(postgres_server, "m3w_roles"))
    init_roles(roles.admin, **PASSWORDS)
    result = m3w_migrate(
        {"DATABASE_URL": roles.service.libpq, "M3W_MIGRATE_DATABASE_URL": roles.owner.libpq}
    )
    assert result.returncode == 0, result.stderr
    return roles


def query(url: DatabaseUrl, sql: str) -> list[tuple]:
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def test_the_owner_role_owns_the_schema_and_everything_in_it(roles):
    owners = query(
        roles.admin,
        "SELECT DISTINCT relowner::regrole::text FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'S') "
        "UNION SELECT DISTINCT proowner::regrole::text FROM pg_proc "
        "WHERE pronamespace = 'public'::regnamespace "
        "UNION SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'",
    )
    assert owners == [("m3w_owner",)]
    assert ("sessions",) in query(roles.admin, "SELECT tablename FROM pg_tables")


def test_no_login_role_has_any_power_beyond_its_group(roles):
    rows = query(
        roles.admin,
        "SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, "
        "       r.rolreplication, r.rolbypassrls, "
        "       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "             WHERE m.member = r.oid ORDER BY 1) "
        "FROM pg_roles r WHERE r.rolname IN ('m3w_owner', 'm3w_service', 'm3w_grafana') "
        "ORDER BY 1",
    )
    assert {r[0]: (r[1:-1], r[-1]) for r in rows} == {
        role: ((True, False, False, False, False, False), [group] if group else [])
        for role, group in LOGIN_ROLES.items()
    }
    settings = query(
        roles.admin,
        "SELECT setconfig FROM pg_db_role_setting WHERE setrole = 'm3w_grafana'::regrole",
    )
    assert settings == [(["default_transaction_read_only=on"],)]


# Who may do what: (role, statement, allowed). A refused statement must fail with
# "insufficient privilege" (42501) or, for Grafana's writes, "read-only transaction" (25006).
SESSION_INSERT = (
    "INSERT INTO sessions (tenant_id, session_id, timestamp, ended_at, payload) "
    "SELECT id, 'role-test', 1771149600000, now(), '{}' FROM tenants WHERE slug = 'default' "
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET timestamp = EXCLUDED.timestamp"
)
KEY_INSERT = (
    "INSERT INTO api_keys (tenant_id, name, prefix, key_hash) "
    "SELECT id, 'intruder', 'm3w_x', sha256('x') FROM tenants WHERE slug = 'default'"
)
PRIVILEGES = [
    ("service", SESSION_INSERT, True),
    ("service", "SELECT count(*) FROM sessions", True),
    ("service", "SELECT refresh_qoe_rollups()", True),
    ("service", "CREATE TABLE intruder (id int)", False),
    ("service", "CREATE TEMP TABLE intruder (id int)", False),
    ("service", "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'", False),
    ("service", "CREATE INDEX intruder ON sessions (app_name)", False),
    ("service", "ALTER TABLE sessions ADD COLUMN intruder int", False),
    ("service", "DROP TABLE sessions", False),
    ("service", "DROP VIEW qoe_hourly", False),
    ("service", "TRUNCATE sessions", False),
    ("service", "DELETE FROM sessions", False),
    ("service", "DELETE FROM schema_migrations", False),
    ("service", "COPY (SELECT 1) TO PROGRAM 'id'", False),
    ("service", "SELECT pg_read_file('/etc/passwd')", False),
    ("service", "CREATE ROLE intruder SUPERUSER", False),
    ("service", "SET ROLE m3w_owner", False),
    # API keys: the service looks them up and records their use; only the owner (`m3w keys`)
    # creates or revokes one.
    ("service", "SELECT count(*) FROM tenants JOIN api_keys ON tenant_id = tenants.id", True),
    ("service", "UPDATE api_keys SET last_used_at = now()", True),
    ("service", "UPDATE api_keys SET revoked_at = NULL", False),
    ("service", KEY_INSERT, False),
    ("service", "INSERT INTO tenants (slug, name) VALUES ('intruder', 'x')", False),
    ("service", "DELETE FROM api_keys", False),
    ("grafana", "SELECT count(*) FROM sessions", True),
    ("grafana", "SELECT count(*) FROM qoe_hourly", True),
    ("grafana", "SELECT count(*) FROM qoe_daily_breakdown", True),
    ("grafana", "SELECT startup_quantile(startup_histogram_of(3, 10), 0.5)", True),
    ("grafana", SESSION_INSERT, False),
    ("grafana", "UPDATE sessions SET app_name = 'x'", False),
    ("grafana", "DELETE FROM sessions", False),
    ("grafana", "SELECT refresh_qoe_rollups()", False),
    ("grafana", "CREATE TABLE intruder (id int)", False),
    ("grafana", "COPY (SELECT 1) TO PROGRAM 'id'", False),
    ("grafana", "SELECT pg_read_file('/etc/passwd')", False),
    ("grafana", "SET ROLE m3w_service", False),
    ("grafana", "SELECT slug, name FROM tenants", True),
    ("grafana", "SELECT key_hash FROM api_keys", False),
    ("owner", KEY_INSERT, True),
    ("owner", "CREATE TABLE owner_may (id int)", True),
    ("owner", "COPY (SELECT 1) TO PROGRAM 'id'", False),
    ("owner", "CREATE ROLE intruder", False),
]


@pytest.mark.parametrize(
    ("role", "statement", "allowed"),
    PRIVILEGES,
    ids=[f"{r}-{'may' if a else 'may-not'}-{s[:40]}" for r, s, a in PRIVILEGES],
)
def test_what_each_role_may_do(roles, role, statement, allowed):
    url = getattr(roles, role)
    with psycopg.connect(url.libpq) as conn:  # one transaction, rolled back: no trace left
        if allowed:
            conn.execute(statement)
        else:
            with pytest.raises(
                (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)
            ):
                conn.execute(statement)
        conn.rollback()


def test_grafana_writes_are_refused_even_after_it_turns_read_only_off(roles):
    """default_transaction_read_only is a default any session may change: the grants are
    what stop Grafana writing."""
    with psycopg.connect(roles.grafana.libpq, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        conn.execute("SET default_transaction_read_only = off")
        for statement in (SESSION_INSERT, "DELETE FROM qoe_hourly_rollup", "TRUNCATE sessions"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_only_the_three_roles_may_connect(roles):
    with psycopg.connect(roles.admin.libpq, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS m3w_stranger")
        conn.execute("CREATE ROLE m3w_stranger LOGIN PASSWORD 'stranger-pw'")
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(as_role(roles.admin, "m3w_stranger", "stranger-pw").libpq)
    finally:
        query(roles.admin, "DROP ROLE m3w_stranger")


def test_init_again_changes_passwords_and_keeps_everything_else(roles):
    changed = {**PASSWORDS, "grafana_password": "a-new-grafana-password"}
    init_roles(roles.admin, **changed)
    try:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(roles.grafana.libpq)
        assert query(roles_on(roles.admin, changed).grafana, "SELECT 1") == [(1,)]
        assert query(roles.service, "SELECT count(*) >= 0 FROM sessions") == [(True,)]
    finally:
        init_roles(roles.admin, **PASSWORDS)


def psql_roles_sql(admin: DatabaseUrl, *variables: str) -> subprocess.CompletedProcess[str]:
    """roles.sql as docs/deploy.md runs it: psql -v name=value ... -f db/init/roles.sql."""
    plain = DatabaseUrl(admin.user, None, admin.host, admin.port, admin.database, admin.query)
    args = [arg for variable in variables for arg in ("-v", variable)]
    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-X", *args, "-f", str(ROLES_SQL), "-d", plain.libpq],
        env={"PGPASSWORD": admin.password or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_psql_with_plain_passwords_as_documented(roles):
    result = psql_roles_sql(roles.admin, *(f"{k}={v}" for k, v in PASSWORDS.items()))
    assert result.returncode == 0, result.stderr
    assert "Media3Watch roles ready" in result.stdout
    assert query(roles.service, "SELECT current_user") == [("m3w_service",)]


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_a_missing_password_stops_before_changing_anything(roles, missing):
    given = [f"{k}=unused-{k}" for k in PASSWORDS if k != missing]
    result = psql_roles_sql(roles.admin, *given)
    assert result.returncode != 0
    assert f"set the psql variable {missing}" in result.stderr
    # Nothing ran: the old passwords still work.
    assert query(roles.owner, "SELECT 1") == [(1,)]
    assert query(roles.grafana, "SELECT 1") == [(1,)]


def test_an_empty_password_is_refused(roles):
    result = psql_roles_sql(
        roles.admin, "owner_password=", "service_password=x", "grafana_password=y"
    )
    assert result.returncode != 0
    assert "must not be empty" in result.stderr
    assert query(roles.owner, "SELECT 1") == [(1,)]


def test_a_database_migrated_before_the_roles_is_adopted_by_the_owner(postgres_server):
    """The old compose stack migrated as a superuser: after roles.sql the owner role owns
    it all and carries on with the migrations (down and up again)."""
    admin = create_database(postgres_server, "m3w_roles_upgrade")
    dbmate(admin, "up")
    query(
        admin,
        "INSERT INTO sessions (tenant_id, session_id, timestamp, ended_at, payload) "
        "SELECT id, 'old', 1, now(), '{}' FROM tenants WHERE slug = 'default'",
    )
    init_roles(admin, **PASSWORDS)
    roles = roles_on(admin)
    owners = query(
        admin,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' "
        "UNION SELECT DISTINCT viewowner FROM pg_views WHERE schemaname = 'public'",
    )
    assert owners == [("m3w_owner",)]
    dbmate(roles.owner, "rollback")
    dbmate(roles.owner, "up")
    assert "Pending: 0" in dbmate(roles.owner, "status").stdout
    assert query(roles.grafana, "SELECT session_id FROM sessions") == [("old",)]


# ------------------------------------------------------------- the service as its role


@pytest.fixture
def service_as_its_role(roles, tmp_path) -> Iterator[RunningServer]:
    """Configured as docker-compose.yml does: host and database in DATABASE_URL, the role
    and its password beside it."""
    url = roles.service
    env = {
        "DATABASE_URL": f"postgres://{url.host}:{url.port}/{url.database}",
        "DATABASE_USER": url.user or "",
        "DATABASE_PASSWORD": url.password or "",
        "M3W_API_KEY": TEST_API_KEY,
        "M3W_ROLLUP_REFRESH_SECONDS": "1",
    }
    query(roles.admin, "DELETE FROM sessions")
    with RunningServer(env, tmp_path / "server.log") as server:
        yield server


def test_the_service_ingests_and_refreshes_rollups_as_the_service_role(roles, service_as_its_role):
    with service_as_its_role.client(TEST_API_KEY) as api:
        assert api.get("/health/ready").status_code == 200
        first = payload_a(sessionId="as-service-role")
        assert api.post("/v1/sessions", json=first).status_code == 200
        newer = payload_a(sessionId="as-service-role", timestamp=first["timestamp"] + 1000)
        assert api.post("/v1/sessions", json=newer).status_code == 200
    rows = query(roles.admin, "SELECT session_id, timestamp FROM sessions")
    assert rows == [("as-service-role", first["timestamp"] + 1000)]
    users = query(
        roles.admin,
        "SELECT DISTINCT usename FROM pg_stat_activity "
        "WHERE datname = 'm3w_roles' AND usename <> current_user",
    )
    assert users == [("m3w_service",)]
    # The service's own rollup refresh (every second here) empties the dirty hours.
    deadline = time.monotonic() + 30
    while query(roles.admin, "SELECT count(*) FROM qoe_rollup_dirty_hours") != [(0,)]:
        assert time.monotonic() < deadline, service_as_its_role.log()
        time.sleep(0.2)
    assert query(roles.grafana, "SELECT sum(sessions) FROM qoe_hourly_rollup") == [(1,)]
    assert "permission denied" not in service_as_its_role.log()


def test_the_service_role_cannot_reach_the_database_with_a_wrong_password(roles, tmp_path):
    url = roles.service
    env = {
        "DATABASE_URL": f"postgres://{url.host}:{url.port}/{url.database}",
        "DATABASE_USER": "m3w_service",
        "DATABASE_PASSWORD": "not-the-password",
        "M3W_API_KEY": TEST_API_KEY,
    }
    query(roles.admin, "DELETE FROM sessions")
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        assert api.get("/health/ready").status_code == 503
        assert api.post("/v1/sessions", json=payload_a()).status_code == 503
    assert query(roles.admin, "SELECT count(*) FROM sessions") == [(0,)]


def test_migrating_as_the_owner_before_the_init_step_says_what_to_run(tmp_path):
    """Needs a server of its own: on the suite's, another test created the group roles."""
    embedded = EmbeddedPostgres(tmp_path / "pgdata", free_port())
    with embedded.running() as admin:
        query(admin, "CREATE ROLE m3w_owner LOGIN PASSWORD 'owner-pw'")
        query(admin, "ALTER SCHEMA public OWNER TO m3w_owner")
        result = dbmate(as_role(admin, "m3w_owner", "owner-pw"), "up", check=False)
    assert result.returncode != 0
    assert "m3w_owner may not create them: run db/init/roles.sql" in result.stderr
