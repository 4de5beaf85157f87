"""Retention (issue 8, part 2): sessions past their tenant's cutoff are deleted in batches by
one process at a time, and the dashboards over the pruned hours keep showing what they showed
before, through later refreshes and other tenants' writes; `m3w prune [--dry-run]`;
ROLLUP_RETENTION_DAYS; the service's own periodic prune and its metric."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from service.config import DatabaseUrl
from service.retention import Pruner, connect, prune_pass, session_cutoff
from tests.conftest import migrated_database, server_env
from tests.servers import RunningServer
from tests.signals import metric_or_zero, scrape, wait_until
from tests.tenancy import m3w
from tests.test_dashboards import login_role

NOW = datetime(2026, 5, 20, 12, 34, 56, 789_000, tzinfo=UTC)
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)

SEED = """
INSERT INTO sessions (tenant_id, session_id, "timestamp", ended_at, startup_time_ms,
                      error_count, play_time_ms, rebuffer_time_ms, rebuffer_count, app_name,
                      app_version, content_id, payload)
SELECT %(tenant)s, %(prefix)s || i, (extract(epoch FROM e) * 1000)::bigint, e,
       CASE WHEN i %% 9 = 0 THEN NULL ELSE 200 + (i * 137) %% 9000 END,
       CASE WHEN i %% 11 = 0 THEN 1 ELSE 0 END, 60000 + i, (i %% 5) * 250, i %% 3,
       (ARRAY['alpha', 'beta'])[1 + i %% 2], '1.' || (i %% 3), 'content-' || (i %% 4), '{}'
FROM unnest(%(moments)s::timestamptz[]) WITH ORDINALITY AS u (e, i)
"""
OVERVIEW = "SELECT * FROM qoe_overview(%s, %s, %s, '{*}', '{*}', '{*}', '{*}', %s)"
BREAKDOWN = "SELECT * FROM qoe_breakdown(%s, %s, %s, '{*}', '{*}', '{*}', '{*}', %s) ORDER BY 1, 2"


@pytest.fixture(scope="module")
def template(postgres_server: DatabaseUrl) -> DatabaseUrl:
    return migrated_database(postgres_server, "m3w_retention_template")


@pytest.fixture
def url(postgres_server: DatabaseUrl, template: DatabaseUrl) -> DatabaseUrl:
    """A fresh migrated database per test (a copy of the template: fast)."""
    with psycopg.connect(postgres_server.libpq, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "m3w_retention" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "m3w_retention" TEMPLATE "{template.database}"')
    return DatabaseUrl(
        postgres_server.user,
        postgres_server.password,
        postgres_server.host,
        postgres_server.port,
        "m3w_retention",
        postgres_server.query,
    )


@pytest.fixture
def conn(url: DatabaseUrl) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url.libpq, autocommit=True) as connection:
        yield connection


def tenant(conn: psycopg.Connection, slug: str, retention_days: int | None) -> int:
    return conn.execute(
        "INSERT INTO tenants (slug, name, retention_days) VALUES (%s, %s, %s) RETURNING id",
        (slug, slug, retention_days),
    ).fetchone()[0]


def seed(conn: psycopg.Connection, tenant_id: int, prefix: str, moments: list[datetime]) -> None:
    conn.execute(SEED, {"tenant": tenant_id, "prefix": prefix, "moments": moments})


def ids(conn: psycopg.Connection, tenant_id: int) -> set[str]:
    rows = conn.execute("SELECT session_id FROM sessions WHERE tenant_id = %s", (tenant_id,))
    return {r[0] for r in rows}


def rounded(rows: list[tuple]) -> list[tuple]:
    """Float sums added in another order differ in their last bits."""
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def dashboards(conn: psycopg.Connection, start: datetime, end: datetime, tenants) -> dict:
    """What the overview (stats and hourly series) and two breakdowns show over a range."""
    return {
        "stats": rounded(conn.execute(OVERVIEW, (start, end, None, tenants)).fetchall()),
        "hourly": rounded(conn.execute(OVERVIEW, (start, end, 3_600_000, tenants)).fetchall()),
        "content": rounded(conn.execute(BREAKDOWN, (start, end, "content_id", tenants)).fetchall()),
        "versions": rounded(
            conn.execute(BREAKDOWN, (start, end, "app_version", tenants)).fetchall()
        ),
    }


def dirty_hours_before(conn: psycopg.Connection, moment: datetime) -> int:
    return conn.execute(
        "SELECT count(*) FROM qoe_rollup_dirty_hours WHERE hour < %s", (moment,)
    ).fetchone()[0]


def test_prunes_exactly_past_each_cutoff_in_batches_and_keeps_the_dashboards(url, conn):
    """Three tenants: RETENTION_DAYS (10), its own 3 days, its own 0 (forever). Exactly the
    sessions before each tenant's cutoff go, several batches each, each batch committed on its
    own; the dashboards over the pruned hours, by tenant and for All, are unchanged, dirty
    hours included, and stay so through later refreshes and later writes to those hours."""
    rng = random.Random(8)
    a, b, c = tenant(conn, "a", None), tenant(conn, "b", 3), tenant(conn, "c", 0)
    cut_a, cut_b = session_cutoff(NOW, 10), session_cutoff(NOW, 3)
    assert (cut_a, cut_b) == (
        datetime(2026, 5, 10, 12, tzinfo=UTC),
        datetime(2026, 5, 17, 12, tzinfo=UTC),
    )

    def moments(n: int, cutoff: datetime) -> list[datetime]:
        spread = [NOW - timedelta(seconds=rng.randrange(20 * 86400)) for _ in range(n)]
        return [*spread, cutoff - US, cutoff, cutoff + US]

    sessions = {a: moments(1600, cut_a), b: moments(1200, cut_b), c: moments(400, cut_a)}
    # Half refreshed into the rollups, half (and some moved between hours) left dirty.
    for t, when in sessions.items():
        seed(conn, t, "s-", when[::2])
    conn.execute("SELECT refresh_qoe_rollups()")
    for t, when in sessions.items():
        seed(conn, t, "d-", when[1::2])
    conn.execute(
        "UPDATE sessions SET ended_at = ended_at - interval '90 minutes' "
        "WHERE session_id LIKE 's-%%' AND ended_at < %s - interval '2 days'",
        (cut_a,),
    )
    assert dirty_hours_before(conn, cut_a) > 50
    expected = {
        t: {
            sid
            for sid, ended in conn.execute(
                "SELECT session_id, ended_at FROM sessions WHERE tenant_id = %s", (t,)
            )
            if cutoff is None or ended >= cutoff
        }
        for t, cutoff in ((a, cut_a), (b, cut_b), (c, None))
    }
    start = cut_a - timedelta(days=15)  # whole hours up to each cutoff
    ranges = {a: (start, cut_a - US), b: (start, cut_b - US), c: (start, cut_b - US)}
    scenarios = [(t, [str(t)]) for t in (a, b, c)] + [(None, None)]
    before = {str(tenants): dashboards(conn, *ranges[t or a], tenants) for t, tenants in scenarios}

    batches: list[tuple[str, int, int]] = []
    during: list[tuple[str, int, dict]] = []
    cutoffs = {"a": cut_a, "b": cut_b}

    def pruned(slug: str, deleted: int) -> None:
        # Seen from another connection while the pass goes on: every batch is committed, it
        # dirtied none of the pruned hours, and the dashboards show what they showed.
        with psycopg.connect(url.libpq, autocommit=True) as other:
            left = other.execute(
                "SELECT count(*) FROM sessions s JOIN tenants t ON t.id = s.tenant_id "
                "WHERE t.slug = %s",
                (slug,),
            ).fetchone()[0]
            t = {"a": a, "b": b}[slug]
            shown = dashboards(other, *ranges[t], [str(t)])
            during.append((slug, dirty_hours_before(other, cutoffs[slug]), shown))
        batches.append((slug, deleted, left))

    queries = connect(url, 5)
    try:
        report = prune_pass(
            queries, retention_days=10, rollup_retention_days=0, batch_size=300, now=NOW,
            pruned=pruned,
        )  # fmt: skip
    finally:
        queries.engine.dispose()

    assert report.ran
    by_slug = {t.slug: t for t in report.tenants}
    assert by_slug["a"].cutoff == cut_a and by_slug["b"].cutoff == cut_b
    assert by_slug["c"].cutoff is None and by_slug["c"].sessions == 0
    for t, slug in ((a, "a"), (b, "b"), (c, "c")):
        assert ids(conn, t) == expected[t]
        deleted = len(sessions[t]) - len(expected[t])
        assert by_slug[slug].sessions == deleted
        mine = [(n, left) for s, n, left in batches if s == slug]
        assert sum(n for n, _ in mine) == deleted
        if deleted:
            assert len(mine) >= 3 and all(n <= 300 for n, _ in mine)
            # after each batch, the other connection saw exactly what was left
            total = len(sessions[t])
            assert [left for _, left in mine] == [
                total - sum(n for n, _ in mine[: i + 1]) for i in range(len(mine))
            ]
    assert dirty_hours_before(conn, cut_b) == 0  # refreshed first; the deletes dirtied none
    assert [(slug, dirty) for slug, dirty, _ in during] == [(slug, 0) for slug, _, _ in during]
    for slug, _, shown in during:
        assert shown == before[str([str({"a": a, "b": b}[slug])])]
    after = {str(tenants): dashboards(conn, *ranges[t or a], tenants) for t, tenants in scenarios}
    assert after == before
    assert before[str([str(a)])]["stats"][0][1] > 700  # the check has something to compare

    # Later writes into pruned hours: c's (its hours are not pruned) dirties the hour; a's
    # late session (past its retention) dirties nothing and is not counted.
    late_hour = cut_a - 5 * HOUR
    seed(conn, c, "late-", [late_hour + timedelta(minutes=7)])
    seed(conn, a, "late-", [cut_a - 6 * HOUR + timedelta(minutes=7)])
    dirty = {r[0] for r in conn.execute("SELECT hour FROM qoe_rollup_dirty_hours")}
    assert dirty == {late_hour}
    assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] == 1
    conn.execute(  # and every hour recomputed, as after an upgrade's backfill
        "INSERT INTO qoe_rollup_dirty_hours SELECT generate_series(%s::timestamptz, %s, '1 hour')",
        (start, NOW),
    )
    assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 300
    again = {str(tenants): dashboards(conn, *ranges[t or a], tenants) for t, tenants in scenarios}
    for key in (str([str(a)]), str([str(b)])):
        assert again[key] == before[key]
    c_key = str([str(c)])
    assert again[c_key]["stats"][0][1] == before[c_key]["stats"][0][1] + 1
    assert again[str(None)]["stats"][0][1] == before[str(None)]["stats"][0][1] + 1

    # The next pass deletes a's late session; c keeps its own.
    queries = connect(url, 5)
    try:
        report = prune_pass(queries, retention_days=10, rollup_retention_days=0, now=NOW)
    finally:
        queries.engine.dispose()
    assert {t.slug: t.sessions for t in report.tenants} == {"a": 1, "b": 0, "c": 0, "default": 0}


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def count(conn: psycopg.Connection, tenant_id: int) -> int:
    return len(ids(conn, tenant_id))


def cli_tenant(url: DatabaseUrl, conn: psycopg.Connection, slug: str, *options: str) -> int:
    done = m3w(url, "tenants", "create", slug, *options)
    assert done.returncode == 0, done.stderr
    return conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()[0]


def test_m3w_prune_dry_run_deletes_nothing_and_prune_deletes_what_it_printed(url, conn):
    """Per-tenant retention set through the CLI (create, update, back to the default); the
    dry run prints the counts and deletes nothing; the real run prints and deletes them."""
    own = cli_tenant(url, conn, "own-two", "--retention-days", "2")
    forever = cli_tenant(url, conn, "forever", "--retention-days", "9")
    by_default = tenant(conn, "by-default", None)
    back = tenant(conn, "back", 1)
    for slug, days in (("forever", "0"), ("back", "default")):
        done = m3w(url, "tenants", "update", slug, "--retention-days", days)
        assert done.returncode == 0, done.stderr
    assert m3w(url, "tenants", "update", "back", "--retention-days", "-1").returncode == 2
    listing = m3w(url, "tenants", "list").stdout
    assert "RETENTION" in listing
    for slug, shown in (
        ("own-two", "2 days"),
        ("forever", "forever"),
        ("by-default", "RETENTION_DAYS"),
        ("back", "RETENTION_DAYS"),
    ):
        assert next(line for line in listing.splitlines() if line.startswith(slug + " ")).endswith(
            shown
        )
    for t in (own, forever, by_default, back):
        seed(conn, t, "old-", [ago(days=5, minutes=i) for i in range(7)])
        seed(conn, t, "mid-", [ago(days=3, minutes=i) for i in range(5)])
        seed(conn, t, "new-", [ago(hours=20, minutes=i) for i in range(3)])
    before = {t: ids(conn, t) for t in (own, forever, by_default, back)}
    env = {"RETENTION_DAYS": "4"}

    dry = m3w(url, "prune", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert any(line.startswith("own-two: would delete 12 sessions") for line in lines), lines
    assert any(line.startswith("by-default: would delete 7 sessions") for line in lines)
    assert any(line.startswith("back: would delete 7 sessions") for line in lines)
    assert "forever: kept forever" in dry.stdout
    assert "nothing was deleted" in dry.stdout
    assert {t: ids(conn, t) for t in before} == before

    done = m3w(url, "prune", **env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.replace("deleted", "would delete").splitlines()[:-1] == lines[:-1]
    assert count(conn, own) == 3
    assert count(conn, by_default) == count(conn, back) == 8
    assert ids(conn, forever) == before[forever]
    assert "Deleted 26 sessions" in done.stdout


def test_one_process_prunes_at_a_time(url, conn):
    """While another session holds the advisory lock, a pass skips and deletes nothing (the
    CLI says so and exits 1); once it is released, the pass runs."""
    t = tenant(conn, "locked", 1)
    seed(conn, t, "old-", [ago(days=3, minutes=i) for i in range(10)])
    with psycopg.connect(url.libpq, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('m3w_retention'))")
        done = m3w(url, "prune")
        assert done.returncode == 1
        assert "another process is pruning" in done.stderr
        queries = connect(url, 5)
        try:
            report = prune_pass(queries, retention_days=0, rollup_retention_days=0)
        finally:
            queries.engine.dispose()
        assert not report.ran
        assert count(conn, t) == 10
        holder.execute("SELECT pg_advisory_unlock(hashtext('m3w_retention'))")
    done = m3w(url, "prune")
    assert done.returncode == 0, done.stderr
    assert "locked: deleted 10 sessions" in done.stdout
    assert count(conn, t) == 0


ROLLUP_ROWS_BEFORE = """
SELECT (SELECT count(*) FROM qoe_hourly_rollup WHERE hour < %(moment)s)
     + (SELECT count(*) FROM qoe_hourly_breakdown_rollup WHERE hour < %(moment)s)
     + (SELECT count(*) FROM qoe_daily_breakdown_rollup WHERE day < %(moment)s)
"""


def test_rollup_retention_deletes_old_rollup_rows_only(url, conn):
    """ROLLUP_RETENTION_DAYS=30 with sessions kept forever: the rollup rows of days before
    the cutoff go (hourly rows and their days), the others and every session stay."""
    t = tenant(conn, "rolled", None)
    seed(conn, t, "old-", [ago(days=40, hours=i) for i in range(30)])
    seed(conn, t, "new-", [ago(days=10, hours=i) for i in range(30)])
    conn.execute("SELECT refresh_qoe_rollups()")
    old = conn.execute(ROLLUP_ROWS_BEFORE, {"moment": ago(days=25)}).fetchone()[0]
    total = conn.execute(ROLLUP_ROWS_BEFORE, {"moment": ago(days=-1)}).fetchone()[0]
    assert old > 30 and total > old
    env = {"ROLLUP_RETENTION_DAYS": "30"}

    dry = m3w(url, "prune", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert f"rollups: would delete {old} rows" in dry.stdout
    assert conn.execute(ROLLUP_ROWS_BEFORE, {"moment": ago(days=-1)}).fetchone()[0] == total

    done = m3w(url, "prune", **env)
    assert done.returncode == 0, done.stderr
    assert f"rollups: deleted {old} rows" in done.stdout
    assert conn.execute(ROLLUP_ROWS_BEFORE, {"moment": ago(days=-1)}).fetchone()[0] == total - old
    assert count(conn, t) == 60
    stats = conn.execute(OVERVIEW, (ago(days=15), ago(), None, [str(t)])).fetchone()
    assert stats[1] == 30  # the recent hours' rollups are intact


def test_the_service_prunes_by_itself_as_its_own_role(url, conn, tmp_path):
    """A server logged in as a member of m3w_ingest (which may not DELETE FROM sessions)
    prunes every M3W_RETENTION_INTERVAL_SECONDS through the retention functions, counts
    sessions_pruned_total by tenant and logs the pass."""
    t = tenant(conn, "served", 3)
    seed(conn, t, "old-", [ago(days=5, minutes=i) for i in range(25)])
    seed(conn, t, "new-", [ago(hours=1, minutes=i) for i in range(4)])
    service = login_role(url, "m3w_retention_service", "m3w_ingest")
    with (
        psycopg.connect(service.libpq) as as_service,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        as_service.execute("DELETE FROM sessions")
    env = server_env(service, M3W_RETENTION_INTERVAL_SECONDS="1")
    with RunningServer(env, tmp_path / "server.log") as server:
        wait_until(lambda: count(conn, t) == 4, "the service pruned the old sessions")
        name = 'sessions_pruned_total{tenant="served"}'
        wait_until(lambda: metric_or_zero(scrape(server.url), name) == 25, f"{name} == 25")
        wait_until(lambda: "retention: deleted 25 sessions" in server.log(), "the pass logged")
    assert ids(conn, t) == {f"new-{i}" for i in range(1, 5)}


def test_stopping_cancels_a_pass_and_its_statement(url, conn):
    """Cancelling the service's pass (as a stopping worker does) while it waits in PostgreSQL
    (here for the refresh lock, held by the test) ends the statement in PostgreSQL and frees
    the retention lock; nothing was deleted, and the next pass does the work."""
    t = tenant(conn, "stopped", 1)
    seed(conn, t, "old-", [ago(days=3, minutes=i) for i in range(10)])
    pruner = Pruner(url, 5, 0, 0)
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE '%%qoe_seal_pruned_hours%%'"
    )
    retention_locks = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 1 AND objid::bigint = (hashtext('m3w_retention')::bigint & 4294967295)"
    )

    async def cancel_while_waiting() -> None:
        task = asyncio.get_running_loop().create_task(pruner.run_pass())
        await asyncio.to_thread(
            wait_until, lambda: conn.execute(waiting).fetchone()[0] == 1, "the pass waits"
        )
        assert conn.execute(retention_locks).fetchone()[0] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with psycopg.connect(url.libpq) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('refresh_qoe_rollups'))")
        asyncio.run(cancel_while_waiting())
        wait_until(lambda: conn.execute(waiting).fetchone()[0] == 0, "the statement ended")
        wait_until(lambda: conn.execute(retention_locks).fetchone()[0] == 0, "lock released")
        assert count(conn, t) == 10
    try:
        report = asyncio.run(pruner.run_pass())
    finally:
        pruner.close()
    assert report.sessions == 10 and count(conn, t) == 0
