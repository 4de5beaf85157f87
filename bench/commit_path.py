"""What one lone commit costs the database thread: `python -m bench.commit_path`.

Issue 11 traced the durable path's extra CPU to the commit itself. This runs the service's
upsert (queries/upsert_sessions.sql, one single-row session per call, one thread, no event
loop, embedded PostgreSQL) three ways, in alternated rounds, and prints the wall time and
the CPU time of this process per commit:
  - service: as the service runs it, PugSQL on the autocommit SQLAlchemy engine of
    service/store.py, the statement alone (one round trip), its deadline in the database
    server's clock (service/db_clock.py);
  - transaction: as the service ran it before, PugSQL on an engine that opens a
    transaction: BEGIN, the statement, COMMIT (three round trips);
  - psycopg: the statement alone straight on an autocommit psycopg connection (what PugSQL
    and SQLAlchemy add to the service's way is the difference).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from bench.database import migrated_postgres
from service.db_clock import DatabaseClock
from service.store import CLOCK_RECHECK_SECONDS, QUERIES_DIR, queries_module
from tests.tenancy import new_tenant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1500, help="commits per round and way")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="m3w-commit-") as scratch,
        migrated_postgres(Path(scratch)) as database,
    ):
        url = database.url
        new_tenant(url, "commit")
        with psycopg.connect(url.libpq) as conn:
            tenant_id = conn.execute("SELECT max(id) FROM tenants").fetchone()[0]
        statement = (QUERIES_DIR / "upsert_sessions.sql").read_text()
        driver_statement = statement.replace(":rows", "%(rows)s").replace(
            ":commit_by", "%(commit_by)s"
        )
        queries = queries_module(url, 1, 3, autocommit=True)
        clock = DatabaseClock(queries.database_clock, CLOCK_RECHECK_SECONDS)
        in_transactions = queries_module(url, 1, 3)
        autocommit = psycopg.connect(url.libpq, autocommit=True)

        def service(rows: str) -> None:
            commit_by = clock.in_server_time(time.monotonic() + 5)
            queries.upsert_sessions(rows=rows, commit_by=commit_by)

        def transaction(rows: str) -> None:
            in_transactions.upsert_sessions(rows=rows, commit_by=math.inf)

        def straight(rows: str) -> None:
            autocommit.execute(driver_statement, {"rows": rows, "commit_by": math.inf})

        ways = {"service": service, "transaction": transaction, "psycopg": straight}
        figures: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        numbers = iter(range(10**9))
        for round_ in range(args.rounds):
            order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
            for way in order:
                figures[way].append(measure(ways[way], tenant_id, numbers, args.commits))
        autocommit.close()
        for module in (queries, in_transactions):
            module.engine.dispose()

    print(f"\nOne single-row upsert per commit, {args.commits} per round, {args.rounds} rounds")
    print(f"  {'way':<11} {'wall us':>8} {'CPU us':>7}   (median round; rounds: CPU us)")
    for way, rounds in figures.items():
        wall = statistics.median(w for w, _ in rounds)
        cpu = statistics.median(c for _, c in rounds)
        spread = ", ".join(f"{c:.0f}" for _, c in rounds)
        print(f"  {way:<11} {wall:>8.0f} {cpu:>7.0f}   ({spread})")
    print("  (CPU: this process only, user + system; PostgreSQL's own work is not in it)")
    return 0


def measure(
    commit: Callable[[str], None], tenant_id: int, numbers: Iterator[int], commits: int
) -> tuple[float, float]:
    """Wall and CPU microseconds per commit, after a warm-up (psycopg prepares the statement
    from its fifth execution)."""

    def rows() -> str:
        number = next(numbers)
        return (
            f'[{{"tenant_id":{tenant_id},"session_id":"c-{number}",'
            f'"timestamp":{1771149600000 + number},"payload":{{}}}}]'
        )

    for _ in range(50):
        commit(rows())
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(commits):
        commit(rows())
    return (
        1e6 * (time.perf_counter() - wall) / commits,
        1e6 * (time.process_time() - cpu) / commits,
    )


if __name__ == "__main__":
    sys.exit(main())
