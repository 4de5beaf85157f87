"""The dashboard rollups: the service keeps them fresh by itself (M3W_ROLLUP_REFRESH_SECONDS),
and they stay equal to a recomputation from `sessions` through upserts that move sessions,
deletes, a refresh running while a writer transaction is open, and the backfill of a
database migrated with sessions already in it."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import psycopg
import pytest

from service.config import DatabaseUrl
from service.errors import DatabaseUnavailable
from service.migrations import MIGRATIONS_DIR, dbmate
from service.store import SessionStore
from tests.conftest import TEST_API_KEY, create_database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.test_dashboards import NOW, seed_sessions, write


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


# ------------------------------------------------------ the rollups and their refresh

HOURLY_FROM_SESSIONS = """
    SELECT * FROM qoe_hourly_aggregate(ARRAY(
        SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM sessions))
    ORDER BY hour, tenant_id, app_name, app_version, stream_type, device_os"""
BREAKDOWN_FROM_SESSIONS = """
    SELECT a.* FROM unnest(ARRAY['app_version', 'device_model', 'device_os_version',
                                 'content_id']) AS dimension,
         qoe_{period}_breakdown_aggregate(ARRAY(
             SELECT DISTINCT date_trunc('{period_unit}', ended_at, 'UTC') FROM sessions),
             dimension) AS a
    ORDER BY 1, 2, 3, 4, 5, 6, 7, a.tenant_id"""
BREAKDOWN_ROLLUP = """
    SELECT * FROM qoe_{period}_breakdown_rollup WHERE dimension NOT LIKE '% total'
    ORDER BY 1, 2, 3, 4, 5, 6, 7, tenant_id"""
# The '<dimension> total' rows are the detailed rows summed over the filter dimensions.
TOTALS = """
    SELECT {column}, dimension || ' total', value,
           CASE WHEN dimension = 'app_version' THEN app_name ELSE 'all' END,
           sum(sessions), sum(failed_sessions), sum(started_sessions), sum(rebuffer_ms_sum),
           sum(watch_ms_sum), sum(startup_histogram), tenant_id
    FROM {table} WHERE dimension NOT LIKE '% total' GROUP BY 1, 2, 3, 4, tenant_id
    ORDER BY 1, 2, 3, 4, tenant_id"""
STORED_TOTALS = """
    SELECT {column}, dimension, value, app_name, sessions, failed_sessions, started_sessions,
           rebuffer_ms_sum, watch_ms_sum, startup_histogram, tenant_id
    FROM {table} WHERE dimension LIKE '% total'
    ORDER BY 1, 2, 3, 4, tenant_id"""


def rollups_match_sessions(conn: psycopg.Connection) -> bool:
    """Every rollup equals its recomputation from `sessions` as this connection sees it."""
    hourly = "SELECT * FROM qoe_hourly_rollup ORDER BY hour, tenant_id, 2, 3, 4, 5"
    if conn.execute(hourly).fetchall() != conn.execute(HOURLY_FROM_SESSIONS).fetchall():
        return False
    for period, column in (("hourly", "hour"), ("daily", "day")):
        table = f"qoe_{period}_breakdown_rollup"
        rollup = conn.execute(BREAKDOWN_ROLLUP.format(period=period)).fetchall()
        computed = BREAKDOWN_FROM_SESSIONS.format(period=period, period_unit=column)
        if rollup != conn.execute(computed).fetchall():
            return False
        totals = conn.execute(TOTALS.format(column=column, table=table)).fetchall()
        if totals != conn.execute(STORED_TOTALS.format(column=column, table=table)).fetchall():
            return False
    return True


@pytest.fixture
def rollups_db(postgres_server) -> DatabaseUrl:
    return migrated_database(postgres_server, "m3w_rollups")


def churn(conn: psycopg.Connection, sessions: list[dict]) -> None:
    """Newer summaries that move sessions across hours and days, and deletes."""
    for s in sessions[:40]:
        s["ended_at"] -= timedelta(hours=11)
        s["startup_time_ms"] = 20_000
    write(conn, sessions[:40])
    conn.execute("DELETE FROM sessions WHERE session_id = ANY(%s)", [["b-0041", "b-0043"]])


def test_refresh_leaves_rollups_equal_to_a_recomputation_from_sessions(rollups_db):
    sessions = seed_sessions()[:300]
    with psycopg.connect(rollups_db.libpq, autocommit=True) as conn:
        write(conn, sessions)
        conn.execute("SELECT refresh_qoe_rollups()")
        assert rollups_match_sessions(conn)
        churn(conn, sessions)
        assert not rollups_match_sessions(conn)  # stale until the refresh
        assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM qoe_rollup_dirty_hours").fetchone()[0] == 0
        assert rollups_match_sessions(conn)
        total = conn.execute("SELECT sum(sessions) FROM qoe_hourly_rollup").fetchone()[0]
        assert total == 298


RANGE = (NOW - timedelta(days=3, hours=5, minutes=17), NOW - timedelta(minutes=3))
EXACT_OVERVIEW = """
    SELECT count(*) AS sessions, count(*) FILTER (WHERE error_count > 0) AS failed
    FROM sessions
    WHERE ended_at BETWEEN %(start)s AND %(end)s
      AND ('*' = ANY(%(apps)s) OR coalesce(app_name, 'unknown') = ANY(%(apps)s))"""
DASHBOARD_OVERVIEW = """
    SELECT sessions, round(failure_rate * sessions / 100) AS failed
    FROM qoe_overview(%(start)s, %(end)s, NULL, %(apps)s, '{*}', '{*}', '{*}')"""
EXACT_BREAKDOWN = """
    SELECT coalesce(content_id, 'unknown') AS value, count(*) AS sessions
    FROM sessions
    WHERE ended_at BETWEEN %(start)s AND %(end)s
      AND ('*' = ANY(%(apps)s) OR coalesce(app_name, 'unknown') = ANY(%(apps)s))
    GROUP BY 1 ORDER BY 1"""
DASHBOARD_BREAKDOWN = """
    SELECT value, sessions
    FROM qoe_breakdown(%(start)s, %(end)s, 'content_id', %(apps)s, '{*}', '{*}', '{*}')
    ORDER BY 1"""


def dashboards_match_sessions(conn: psycopg.Connection) -> bool:
    """The overview and a breakdown equal a direct count over `sessions`, for "All" (the
    breakdown's total rows) and for one app (its detailed rows)."""
    for apps in (["*"], ["alpha"]):
        params = {"start": RANGE[0], "end": RANGE[1], "apps": apps}
        for exact, dashboard in (
            (EXACT_OVERVIEW, DASHBOARD_OVERVIEW),
            (EXACT_BREAKDOWN, DASHBOARD_BREAKDOWN),
        ):
            if conn.execute(exact, params).fetchall() != conn.execute(dashboard, params).fetchall():
                return False
    return True


def test_refresh_runs_while_a_writer_transaction_is_open(rollups_db):
    """A writer holding an open transaction (moved sessions, new ones, deletes) neither
    blocks the refresh nor is lost by it: the rollups match what the refresh could see,
    the dashboards are exact the moment the writer commits, and the next refresh catches
    up. Neither side may wait for a lock (lock_timeout 1 ms): no sleep, no timing."""
    sessions = seed_sessions()[:400]
    with (
        psycopg.connect(rollups_db.libpq, autocommit=True) as refresher,
        psycopg.connect(rollups_db.libpq) as writer,
    ):
        write(refresher, sessions[:300])
        refresher.execute("SELECT refresh_qoe_rollups()")
        for conn in (refresher, writer):
            conn.execute("SET lock_timeout = '1ms'")
        churn(writer, sessions)  # inside the writer's open transaction
        write(writer, sessions[300:])
        assert refresher.execute("SELECT count(*) FROM qoe_rollup_dirty_hours").fetchone()[0] == 0

        assert refresher.execute("SELECT refresh_qoe_rollups()").fetchone()[0] == 0
        assert rollups_match_sessions(refresher) and dashboards_match_sessions(refresher)

        writer.commit()
        assert dashboards_match_sessions(refresher)  # before any refresh
        assert refresher.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
        assert rollups_match_sessions(refresher) and dashboards_match_sessions(refresher)

        # The other way round: a refresh transaction open while the writer commits.
        refresher.execute("BEGIN")
        for s in sessions[50:90]:
            s["ended_at"] += timedelta(hours=7)
        write(writer, sessions[50:90])
        writer.execute("DELETE FROM sessions WHERE session_id = ANY(%s)", [["b-0200"]])
        assert refresher.execute("SELECT refresh_qoe_rollups()").fetchone()[0] == 0  # not seen
        writer.commit()
        write(writer, sessions[90:120])  # dirtied while the refresh is still open
        assert refresher.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
        writer.commit()
        refresher.execute("COMMIT")
        assert dashboards_match_sessions(refresher)
        refresher.execute("SELECT refresh_qoe_rollups()")
        assert rollups_match_sessions(refresher) and dashboards_match_sessions(refresher)


def test_one_refresh_at_a_time_and_truncate_empties_the_rollups(rollups_db):
    with psycopg.connect(rollups_db.libpq, autocommit=True) as conn:
        write(conn, seed_sessions()[:50])
        with psycopg.connect(rollups_db.libpq) as other:
            assert other.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
            # `other` holds the lock until it commits: this refresh steps aside.
            assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] == 0
        conn.execute("TRUNCATE sessions")
        for table in (
            "qoe_hourly_rollup",
            "qoe_hourly_breakdown_rollup",
            "qoe_daily_breakdown_rollup",
            "qoe_rollup_dirty_hours",
        ):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_migrating_a_database_that_has_sessions_backfills_the_rollups(postgres_server):
    """Sessions stored before the rollup migrations (no trigger saw them) are in the rollups
    and on the dashboards once the database is migrated up (issue #9, point 8)."""
    url = migrated_database(postgres_server, "m3w_backfill")
    for _ in sorted(MIGRATIONS_DIR.glob("*.sql"))[1:]:
        dbmate(url, "rollback")  # back to the sessions table alone
    sessions = seed_sessions()[:300]
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('qoe_hourly_rollup')").fetchone()[0] is None
        write(conn, sessions)
    dbmate(url, "up")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        assert conn.execute("SELECT sum(sessions) FROM qoe_hourly_rollup").fetchone()[0] == 300
        assert conn.execute("SELECT count(*) FROM qoe_rollup_dirty_hours").fetchone()[0] == 0
        assert rollups_match_sessions(conn) and dashboards_match_sessions(conn)


def test_histogram_constants_are_the_documented_formulas(rollups_db):
    """The constant bounds and per-bucket histograms (faster) are the formulas' values."""
    with psycopg.connect(rollups_db.libpq) as conn:
        [(same,)] = conn.execute(
            "SELECT startup_histogram_bounds() = (SELECT array_agg(100 * power(2, k / 6.0)"
            " ORDER BY k) FROM generate_series(0, 60) AS k)::double precision[]"
        ).fetchall()
        assert same
        # Ten digits per bucket, cumulative: bucket b counts in digit groups b..61.
        for bucket, sessions in [(0, 1), (7, 42), (60, 9_999_999_999), (61, 3)]:
            [(histogram,)] = conn.execute(
                "SELECT startup_histogram_of(%s, %s)", [bucket, sessions]
            ).fetchall()
            expected = f"{sessions:010d}" * (62 - bucket) + "0" * (10 * bucket)
            assert str(histogram) == expected.lstrip("0")
