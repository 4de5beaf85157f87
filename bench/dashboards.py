"""Dashboard query benchmark: `python -m bench.dashboards --sessions 1000000`.

Loads N synthetic sessions (bench/dashboard_data.py) with COPY into a fresh database,
refreshes the rollups, ANALYZEs, then writes what a minute of traffic brings between two
refreshes (recent sessions and a few late ones in past hours), so the hourly view reads
those hours from `sessions` while it is timed. It then times every
panel, variable and alert query as Grafana sends it (macros and variables expanded by
tests/grafana_sql.py, "All" selected, 5 min to 30 d ending now, so mid-hour and mid-day):
one warm-up and the median of --repeat runs, from this client, round trip (and planning)
included.

Targets (issues #4 and #12): every panel <= 100 ms at 1M sessions for every range up to
7 d, and <= 1 s at 10M sessions for every range up to 30 d. Exit status 1 when one is
missed.

It also measures what the rollups cost on the write path: upsert throughput with and
without the triggers (queries/upsert_sessions.sql, one commit per statement), and how long a
refresh takes after that traffic.

Without --database-url it runs its own embedded PostgreSQL in --data-dir (kept, so a second
run on the same N skips the load). Run it with `nice -n 19` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.dashboard_data import COLUMNS, SessionFactory, copy_sessions, default_tenant
from service.config import DatabaseUrl, parse_database_url
from service.migrations import dbmate
from tests.grafana_sql import (
    ALL,
    ROOT,
    TimeRange,
    load_alert_rules,
    load_dashboards,
    render_alert_query,
    render_variable_query,
    sql_panel_queries,
    variable_queries,
)

RANGES = {
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "12h": timedelta(hours=12),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
SELECTION = {
    "tenant": ALL,
    "app_name": ALL,
    "app_version": ALL,
    "stream_type": ALL,
    "device_os": ALL,
    "min_sessions": "10",
    "session_id": "bench-000000042",
}
DATABASE = "m3w_bench_dashboards"
MINUTES_10 = timedelta(minutes=10)
TRIGGERS = ("insert", "update", "delete")


def targets_ms(sessions: int) -> dict[str, float]:
    """Issue #4's targets (24 h and 7 d at 1M, 30 d at 10M), and the same for the short
    ranges people watch during an incident (issue #12)."""
    if sessions >= 10_000_000:
        return dict.fromkeys(RANGES, 1000.0)
    if sessions >= 1_000_000:
        return {label: 100.0 for label in RANGES if label != "30d"}
    return {}


@dataclass
class Timed:
    name: str
    ms: dict[str, float]


# ------------------------------------------------------------------------- database


@contextmanager
def server(args: argparse.Namespace) -> Iterator[DatabaseUrl]:
    if args.database_url:
        url = parse_database_url({"DATABASE_URL": args.database_url})
        assert url is not None
        yield url
        return
    from service.embedded_db import EmbeddedPostgres

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="m3w-bench-"))
    embedded = EmbeddedPostgres(data_dir / "pgdata", args.port, database="postgres")
    try:
        with embedded.running(keep_running=args.keep_running) as url:
            print(f"embedded PostgreSQL in {data_dir} on port {args.port}")
            yield url
    finally:
        if not args.data_dir and not args.keep_running:
            shutil.rmtree(data_dir, ignore_errors=True)  # 10M sessions are ~6 GB


def loaded_sessions(url: DatabaseUrl) -> int | None:
    try:
        with psycopg.connect(url.libpq) as conn:
            row = conn.execute("SELECT sessions FROM bench_load").fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


def prepare(server_url: DatabaseUrl, sessions: int, seed: int) -> DatabaseUrl:
    url = DatabaseUrl(
        server_url.user, server_url.password, server_url.host, server_url.port, DATABASE
    )
    if loaded_sessions(url) == sessions:
        print(f"reusing {sessions:,} sessions in {DATABASE}")
        return url
    with psycopg.connect(server_url.libpq, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    dbmate(url, "up")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        began = time.monotonic()
        copy_sessions(conn, sessions, seed, datetime.now(UTC))
        print(f"COPY {sessions:,} sessions: {time.monotonic() - began:.0f} s")
        began = time.monotonic()
        conn.execute("SELECT refresh_qoe_rollups()")
        print(f"first refresh (every hour and day): {time.monotonic() - began:.0f} s")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE bench_load AS SELECT %s::bigint AS sessions", [sessions])
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('sessions')),"
            " (SELECT count(*) FROM qoe_hourly_rollup),"
            " (SELECT count(*) FROM qoe_daily_breakdown_rollup)"
        ).fetchone()
        print(f"sessions {sizes[0]}; rollup rows: hourly {sizes[1]:,}, daily {sizes[2]:,}")
    return url


# ------------------------------------------------------------------------ write path


def upsert_statement() -> str:
    """The service's upsert, with no deadline to commit by."""
    sql = (ROOT / "queries" / "upsert_sessions.sql").read_text()
    return sql.replace(":rows", "%s").replace(":commit_by", "'infinity'")


def json_rows(
    factory: SessionFactory,
    start: int,
    count: int,
    now: datetime,
    tenant: int | None,
    spread: timedelta = MINUTES_10,
) -> list[str]:
    """Rows for the upsert statement, ended within `spread` before `now`."""
    rows = []
    for values in factory.rows(start, count):
        row = dict(zip(COLUMNS, values, strict=True))
        if tenant is not None:
            row["tenant_id"] = tenant
        moment = now - spread * factory.rng.random()
        row |= {"timestamp": int(moment.timestamp() * 1000), "payload": json.loads(row["payload"])}
        row.pop("ended_at")
        row["started_at"] = row["started_at"].isoformat()
        rows.append(json.dumps(row))
    return rows


def upserts_per_second(conn: psycopg.Connection, rows: list[str], batch: int) -> float:
    statement = upsert_statement()
    began = time.perf_counter()
    for start in range(0, len(rows), batch):
        with conn.transaction():
            conn.execute(statement, ["[" + ",".join(rows[start : start + batch]) + "]"])
    return len(rows) / (time.perf_counter() - began)


def set_triggers(conn: psycopg.Connection, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    for event in TRIGGERS:
        conn.execute(
            f"ALTER TABLE sessions {action} TRIGGER sessions_mark_rollups_dirty_on_{event}"
        )


def measure_write_path(url: DatabaseUrl, count: int) -> list[str]:
    lines = []
    now = datetime.now(UTC)
    factory = SessionFactory(seed=7, now=now)
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        tenant = default_tenant(conn)
        for batch in (1, 100):
            rates = {}
            for enabled in (False, True, False, True):  # interleaved: drift hits both
                rows = json_rows(factory, 900_000_000 + len(rates) * count, count, now, tenant)
                set_triggers(conn, enabled)
                rates.setdefault(enabled, []).append(upserts_per_second(conn, rows, batch))
                set_triggers(conn, True)
                conn.execute("DELETE FROM sessions WHERE session_id >= 'bench-900000000'")
            without, with_ = max(rates[False]), max(rates[True])
            lines.append(
                f"upsert, {batch:>3} per statement: {without:8,.0f} rows/s without triggers, "
                f"{with_:8,.0f} with ({100 * (with_ / without - 1):+.1f}%)"
            )
        began = time.perf_counter()
        hours = conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0]
        lines.append(
            f"refresh after that traffic: {1000 * (time.perf_counter() - began):,.0f} ms "
            f"({hours} hours and their days recomputed)"
        )
    return lines


def make_live(url: DatabaseUrl, late_sessions: int) -> int:
    """The state a minute after a refresh: 200 sessions in the last 10 minutes, and late ones
    (an offline queue flushing) in random hours of the month. Returns the dirty hours."""
    now = datetime.now(UTC)
    factory = SessionFactory(seed=11, now=now)
    month = timedelta(days=30)
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        tenant = default_tenant(conn)
        recent = json_rows(factory, 950_000_000, 200, now, tenant)
        late = [
            json_rows(factory, 960_000_000 + i, 1, now, tenant, month)[0]
            for i in range(late_sessions)
        ]
        conn.execute("SELECT refresh_qoe_rollups()")
        upserts_per_second(conn, recent, 50)
        upserts_per_second(conn, late, 1)
        conn.execute("ANALYZE qoe_rollup_dirty_hours")
        return conn.execute("SELECT count(DISTINCT hour) FROM qoe_rollup_dirty_hours").fetchone()[0]


# --------------------------------------------------------------------------- timing


def median_ms(conn: psycopg.Connection, sql: str, repeat: int) -> float:
    conn.execute(sql).fetchall()  # warm-up
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        conn.execute(sql).fetchall()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs)


def time_everything(url: DatabaseUrl, repeat: int) -> tuple[list[Timed], ...]:
    now = datetime.now(UTC)
    panels, variables, alerts = [], [], []
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        for query in sql_panel_queries():
            ms = {
                label: median_ms(conn, query.render(TimeRange.last(span, now), SELECTION), repeat)
                for label, span in RANGES.items()
            }
            panels.append(Timed(query.key, ms))
        for uid, dashboard in load_dashboards().items():
            for variable in variable_queries(dashboard):
                ms = {
                    label: median_ms(
                        conn,
                        render_variable_query(
                            dashboard, variable, TimeRange.last(span, now), SELECTION
                        ),
                        repeat,
                    )
                    for label, span in RANGES.items()
                }
                variables.append(Timed(f"{uid} variable ${variable['name']}", ms))
        for rule in load_alert_rules():
            for node in rule["data"]:
                if "rawSql" in node["model"]:
                    ms = median_ms(conn, render_alert_query(node, now), repeat)
                    alerts.append(Timed(f"alert {rule['uid']}", {"window": ms}))
    return panels, variables, alerts


def report(title: str, rows: list[Timed], targets: dict[str, float]) -> bool:
    labels = list(rows[0].ms) if rows else []
    width = max(len(r.name) for r in rows)
    print(f"\n{title}")
    print(f"{'query':<{width}}  " + "  ".join(f"{lab:>9}" for lab in labels) + "  verdict")
    passed = True
    for row in rows:
        cells, verdict = [], "-"
        for label in labels:
            ms = row.ms[label]
            limit = targets.get(label)
            cells.append(f"{ms:7.1f}ms" + ("*" if limit is not None and ms > limit else " "))
            if limit is not None:
                verdict = "PASS" if verdict != "FAIL" and ms <= limit else "FAIL"
        passed &= verdict != "FAIL"
        print(f"{row.name:<{width}}  " + "  ".join(cells) + f"  {verdict}")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database-url", help="a PostgreSQL server to use instead")
    parser.add_argument("--data-dir", help="embedded server's directory (default: temporary)")
    parser.add_argument("--port", type=int, default=5499)
    parser.add_argument("--keep-running", action="store_true")
    parser.add_argument("--write-path-rows", type=int, default=5000, help="0 skips it")
    parser.add_argument(
        "--late-sessions", type=int, default=12, help="sessions of past hours written last"
    )
    args = parser.parse_args(argv)

    with server(args) as server_url:
        url = prepare(server_url, args.sessions, args.seed)
        if args.write_path_rows:
            print("\nwrite path (rollup triggers):")
            for line in measure_write_path(url, args.write_path_rows):
                print("  " + line)
        dirty = make_live(url, args.late_sessions)
        print(f"\ndirty hours while timing (read from sessions on the fly): {dirty}")
        panels, variables, alerts = time_everything(url, args.repeat)
    targets = targets_ms(args.sessions)
    print(f"\n{args.sessions:,} sessions; targets: "
          + (", ".join(f"{k} <= {v:.0f} ms" for k, v in targets.items()) or "none at this N")
          + "; * = over target")  # fmt: skip
    passed = report("panels (median of warm runs)", panels, targets)
    passed &= report("dashboard variables", variables, targets)
    passed &= report("alert rule queries (their own window)", alerts, {})
    worst = {label: max(p.ms[label] for p in panels) for label in RANGES}
    print("\nworst panel: " + ", ".join(f"{k} {v:.1f} ms" for k, v in worst.items()))
    print("ALL TARGETS MET" if passed else "TARGETS MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
