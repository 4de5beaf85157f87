"""`m3w tenants grant-read SLUG`: a read-only login role that sees one tenant's rows only
(row-level security on `sessions`, every rollup and `tenants`), for one Grafana org per
tenant. Every dashboard query, run as that role with every variable on All, shows exactly
what the same query shows for that tenant alone; writing is refused; the service and Grafana
roles keep seeing and writing everything."""

from __future__ import annotations

import random
from datetime import timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from service.admin import scram_verifier
from service.config import DatabaseUrl
from tests.grafana_sql import load_dashboards, render_variable_query, variable_queries
from tests.tenancy import m3w
from tests.test_dashboards import (
    EXPECTED,
    NOW,
    QUERIES,
    RANGES,
    SCENARIOS,
    TENANT_IDS,
    Case,
    Seeded,
    assert_rows,
    every_grafana_query,
    login_role,
    make_session,
    seed_database,
    write,
)

ROLE = "m3w_read_beta"


@pytest.fixture(scope="module")
def seeded(postgres_server) -> Seeded:
    seeded = seed_database(postgres_server, "m3w_tenant_read")
    # Roles are cluster-wide: one left by an earlier run (its database is gone) goes first.
    with psycopg.connect(postgres_server.libpq, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
    return seeded


def grant_read(url: DatabaseUrl, slug: str) -> DatabaseUrl:
    done = m3w(url, "tenants", "grant-read", slug)
    assert done.returncode == 0, done.stderr
    password = done.stdout.strip()
    assert password and "\n" not in password and password not in done.stderr
    return DatabaseUrl(ROLE, password, url.host, url.port, url.database, url.query)


def run_as(url: DatabaseUrl, sql: str) -> list[dict]:
    with psycopg.connect(url.libpq, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def reader(seeded: Seeded) -> DatabaseUrl:
    return grant_read(seeded.url, "beta")


@pytest.mark.parametrize("scenario", ["all", "alpha-vod-or-unknown", "unknown-os-one-session"])
@pytest.mark.parametrize("span", ["1h", "90m-mid-hour", "7d", "35d"])
def test_every_panel_shows_only_the_tenants_numbers(seeded, reader, span: str, scenario: str):
    """With the tenant variable on All, the role sees what `beta` alone is: its numbers,
    recomputed in Python from beta's sessions only."""
    seen = SCENARIOS[scenario]
    only_beta = seen | {"tenant": [TENANT_IDS["beta"]]}
    for query in QUERIES:
        case = Case(seeded.sessions, RANGES[span], only_beta, seeded.tenant)
        actual = run_as(reader, query.render(case.time_range, seen))
        assert_rows(query.key, actual, EXPECTED[query.key](case))


def test_variables_offer_only_the_tenants_values(seeded, reader):
    time_range = RANGES["7d"]
    for dashboard in load_dashboards().values():
        for variable in variable_queries(dashboard):
            sql = render_variable_query(dashboard, variable, time_range, SCENARIOS["all"])
            values = [next(iter(r.values())) for r in run_as(reader, sql)]
            if variable["name"] == "tenant":
                assert values == ["beta"]
                continue
            beta = [s for s in Case(seeded.sessions, time_range, SCENARIOS["beta"]).exact()]
            name = variable["name"]
            assert values == sorted({s[name] or "unknown" for s in beta}), name
    every = [r["slug"] for r in run_as(reader, "SELECT slug FROM tenants")]
    assert every == ["beta"]
    rows = run_as(reader, "SELECT DISTINCT tenant_id FROM sessions")
    assert rows == [{"tenant_id": int(TENANT_IDS["beta"])}]
    for table in ("qoe_hourly_rollup", "qoe_hourly_breakdown_rollup", "qoe_daily_breakdown_rollup"):
        rows = run_as(reader, f"SELECT DISTINCT tenant_id FROM {table}")
        assert rows == [{"tenant_id": int(TENANT_IDS["beta"])}], table


def test_the_role_cannot_write(seeded, reader):
    with psycopg.connect(reader.libpq, autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM sessions")
        conn.execute("SET default_transaction_read_only = off")  # a user may; privileges hold
        for statement in (
            "DELETE FROM sessions",
            "UPDATE sessions SET error_count = 0",
            "INSERT INTO qoe_rollup_dirty_hours VALUES (now())",
            "DELETE FROM qoe_hourly_rollup",
            "SELECT refresh_qoe_rollups()",
            "DELETE FROM tenant_read_roles",
            "SELECT * FROM api_keys",
            f"SELECT grant_tenant_read('default', '{scram_verifier('x')}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(seeded.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == len(seeded.sessions)


def test_service_and_grafana_roles_still_see_and_write_everything(seeded, reader):
    grafana = login_role(
        seeded.url, "m3w_test_rls_grafana", "m3w_dashboards", default_transaction_read_only="on"
    )
    for _key, sql in every_grafana_query(NOW):
        run_as(grafana, sql)  # every query runs; the next lines check what they see
    everything = run_as(grafana, "SELECT count(*) AS n FROM sessions")
    assert everything == [{"n": len(seeded.sessions)}]
    assert len(run_as(grafana, "SELECT * FROM tenants")) == len(TENANT_IDS)

    service = login_role(seeded.url, "m3w_test_rls_ingest", "m3w_ingest")
    late = make_session(random.Random(7), 9101, False, NOW - timedelta(days=2, minutes=3))
    late["tenant"] = "default"
    with psycopg.connect(service.libpq, autocommit=True) as conn:
        write(conn, [late])
        assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
        hour = conn.execute(
            "SELECT sum(sessions) FROM qoe_hourly_rollup WHERE tenant_id = %s "
            "AND hour = date_trunc('hour', %s::timestamptz, 'UTC')",
            [int(TENANT_IDS["default"]), late["ended_at"]],
        ).fetchone()[0]
        assert hour >= 1
    seeded.sessions.append(late)
    # ... and the tenant role still sees none of it
    rows = run_as(
        reader, f"SELECT count(*) AS n FROM sessions WHERE session_id = '{late['session_id']}'"
    )
    assert rows == [{"n": 0}]


def test_grant_read_again_resets_the_password(seeded, reader):
    again = grant_read(seeded.url, "beta")
    assert again.password != reader.password
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(reader.libpq).close()
    assert run_as(again, "SELECT slug FROM tenants") == [{"slug": "beta"}]


@pytest.mark.parametrize("slug", ["nobody", "Bad Slug"])
def test_grant_read_of_an_unknown_tenant_is_refused(seeded, slug: str):
    done = m3w(seeded.url, "tenants", "grant-read", slug)
    assert done.returncode == 1
    assert "no tenant" in done.stderr and done.stdout == ""


def test_grant_read_needs_a_role_that_may_create_roles(seeded):
    service = login_role(seeded.url, "m3w_test_rls_no_createrole", "m3w_ingest")
    done = m3w(service, "tenants", "grant-read", "beta")
    assert done.returncode == 1 and done.stdout == ""
    assert "may not create roles" in done.stderr
