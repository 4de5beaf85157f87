"""One instance against two, on one PostgreSQL: `python -m bench.instances`.

Starts an embedded PostgreSQL and two instances of the service (2 workers each, as the
Procfile starts them) on one database, and measures, in one run so that the figures compare
like with like, closed-loop throughput (each connection sends its next request when
answered) of:
  - one instance: every wrk connection to instance A (wrk -t2);
  - two instances: the same number of connections split evenly between A and B, as a load
    balancer would, without one: two wrk processes (-t1 each) started together, one per port;
for durable POST /v1/sessions and for POST /v1/sessions/validate (everything but storage),
the two set-ups taking turns round by round, the one that goes first swapped each round
(ABBA), so that a machine getting busier or quieter meanwhile favours neither.

Printed per connection count: 2xx/s of each set-up and their ratio, p99, the service's CPU
time per request and the CPU it got (CPU seconds per second), how busy the whole machine was
(all CPUs, other work included), and the service's connections to PostgreSQL; then rows
in PostgreSQL against 2xx answers for every durable run (the exit code is 1 if one is
missing). The wrk machinery is bench/ingest.py's.

A second instance on the same machine adds processes, not CPUs: on a 2-core machine that one
instance and PostgreSQL already saturate, expect no real gain (docs/scaling.md reads the
figures: what grows is mostly the service's share of a CPU shared with other jobs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from bench.database import migrated_postgres
from bench.ingest import (
    DURABLE,
    VALIDATE,
    Bench,
    WrkResult,
    ensure_wrk,
    fsync_ms,
    quiet,
    start_server,
)
from service.config import DatabaseUrl

ONE, TWO = "one instance", "two instances"


class _Together(Bench):
    """A Bench whose wrk starts only when its partner's does (after both servers settled)."""

    def __init__(self, *args: object, barrier: threading.Barrier, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.barrier = barrier

    def settle(self) -> None:
        super().settle()
        self.barrier.wait(timeout=120)


@dataclass
class Run:
    """One closed-loop run of one set-up: its wrk results (one or two), the machine's busy
    share of all CPUs meanwhile, and the service's CPU ms per request."""

    results: list[WrkResult]
    machine_busy: float
    service_cpu_ms: float

    @property
    def acknowledged(self) -> int:
        return sum(r.acknowledged for r in self.results)

    @property
    def seconds(self) -> float:
        return max(r.duration_us for r in self.results) / 1e6

    @property
    def p99_ms(self) -> float:
        return max(r.p99_ms for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def service_cores(self) -> float:
        """CPU seconds the instances' processes used per second of the run."""
        requests = sum(max(1, r.requests) for r in self.results)
        return self.service_cpu_ms * requests / 1000 / self.seconds


@dataclass
class Figures:
    runs: dict[tuple[int, str, str], list[Run]] = field(default_factory=dict)
    stored_runs: list[tuple[str, int, int]] = field(default_factory=list)
    backends: int = 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per closed-loop run")
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[32, 256],
        help="total connections per run (split evenly between the instances)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each comparison")
    parser.add_argument("--workers", type=int, default=2, help="workers per instance")
    args = parser.parse_args()
    if any(c < 2 or c % 2 for c in args.connections):
        parser.error("--connections: even numbers of at least 2 (they are split in two)")

    ensure_wrk()
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="m3w-bench-instances-") as scratch,
        migrated_postgres(Path(scratch)) as database,
    ):
        fsync = fsync_ms(Path(scratch))
        figures = run_all(database.url, Path(scratch), args, database.postmaster_pid)
    print_report(figures, args, load_before, os.getloadavg(), fsync)
    missing = sum(max(0, acked - rows) for _, acked, rows in figures.stored_runs)
    return 1 if missing else 0


def run_all(url: DatabaseUrl, scratch: Path, args: argparse.Namespace, postmaster: int) -> Figures:
    figures = Figures()
    a = start_server(url, args.workers, scratch / "a.log")
    try:
        b = start_server(url, args.workers, scratch / "b.log")
    except BaseException:
        a.terminate()
        raise
    try:
        stored = figures.stored_runs
        # The one-instance set-up: A alone, wrk -t2 as bench/ingest.py runs it.
        alone = Bench(a, url, 2, stored, postmaster)
        # The two-instance set-up: one wrk -t1 per instance, started together.
        barrier = threading.Barrier(2)
        pair = [_Together(server, url, 1, stored, postmaster, barrier=barrier) for server in (a, b)]

        def one(path: str, connections: int, name: str) -> Run:
            quiet(b.process.pid)  # B idle too (its own settle covers A), as in `two`
            return measured(lambda: [alone.wrk(path, **wrk_args(connections, name))], [alone])

        def two(path: str, connections: int, name: str) -> Run:
            def both() -> list[WrkResult]:
                with ThreadPoolExecutor(2) as pool:
                    halves = [
                        pool.submit(bench.wrk, path, **wrk_args(connections // 2, f"{name}{side}"))
                        for bench, side in zip(pair, "ab", strict=True)
                    ]
                    return [half.result() for half in halves]

            return measured(both, pair)

        def wrk_args(connections: int, name: str) -> dict:
            return {"duration": args.duration, "connections": connections, "name": name}

        print("warm-up: both instances, durable ...", flush=True)
        two(DURABLE, 64, "warm")  # fills each worker's connection pool
        figures.backends = service_backends(url)
        for round_ in range(args.rounds):
            order = (ONE, TWO) if round_ % 2 == 0 else (TWO, ONE)
            for connections in args.connections:
                for path, label in ((VALIDATE, "validate"), (DURABLE, "durable")):
                    for setup in order:
                        print(
                            f"round {round_ + 1}/{args.rounds}: {connections} connections, "
                            f"{label}, {setup} ...",
                            flush=True,
                        )
                        # Only durable runs are named: their rows are counted against 2xx.
                        name = "" if path == VALIDATE else f"r{round_ + 1}c{connections}"
                        if setup == ONE:
                            run = one(path, connections, name and name + "one")
                        else:
                            run = two(path, connections, name and name + "two")
                        figures.runs.setdefault((connections, label, setup), []).append(run)
        figures.backends = max(figures.backends, service_backends(url))
    finally:
        a.terminate()
        b.terminate()
    return figures


def measured(work, benches: list[Bench]) -> Run:  # type: ignore[no-untyped-def]
    """Run `work` (the wrk runs), with the machine's CPU use around it."""
    before = psutil.cpu_times()
    results = work()
    after = psutil.cpu_times()
    busy = _busy(after) - _busy(before)
    total = sum(after) - sum(before)
    requests = sum(max(1, r.requests) for r in results)
    service_ms = sum(
        b.cpu_ms[0] * max(1, r.requests) for b, r in zip(benches, results, strict=True)
    )
    return Run(results, busy / total if total else 0.0, service_ms / requests)


def _busy(times) -> float:  # type: ignore[no-untyped-def]
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle


def service_backends(url: DatabaseUrl) -> int:
    """The service's connections to PostgreSQL now (both instances, every worker)."""
    with psycopg.connect(url.libpq) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'media3watch' "
            "AND datname = current_database()"
        ).fetchone()[0]


def print_report(
    figures: Figures,
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    fsync: tuple[float, float],
) -> None:
    print()
    print(
        f"Media3Watch, one instance vs two on one PostgreSQL: {args.workers} workers per "
        f"instance, {args.rounds} round(s) of {args.duration}s per set-up, loopback, embedded "
        f"PostgreSQL (synchronous_commit on, fsync on), {os.cpu_count()} CPUs"
    )
    print(
        f"load average: {load_before[0]:.2f} at start, {load_after[0]:.2f} at end; disk: 8 KiB "
        f"write + fdatasync p50 {fsync[0]:.2f} ms, p99 {fsync[1]:.2f} ms"
    )
    print()
    print(
        f"  {'conns':>5}  {'endpoint':<8}  {'one inst/s':>10}  {'two inst/s':>10}  "
        f"{'two/one':>7}  {'p99 ms one, two':>15}  {'svc CPU ms/req':>14}  "
        f"{'svc cores':>10}  {'machine busy':>12}  per round (two/one)"
    )
    for connections in args.connections:
        for label in ("validate", "durable"):
            one = figures.runs[(connections, label, ONE)]
            two = figures.runs[(connections, label, TWO)]
            one_rate, two_rate = _rate(one), _rate(two)
            rounds = ", ".join(
                f"{_rate([t]) / _rate([o]):.2f}" if _rate([o]) else "-"
                for o, t in zip(one, two, strict=True)
            )
            p99 = f"{max(r.p99_ms for r in one):.0f}, {max(r.p99_ms for r in two):.0f}"
            cpu = f"{_mean(one, 'service_cpu_ms'):.2f}, {_mean(two, 'service_cpu_ms'):.2f}"
            cores = f"{_mean(one, 'service_cores'):.2f}, {_mean(two, 'service_cores'):.2f}"
            busy = f"{_mean(one, 'machine_busy'):.0%}, {_mean(two, 'machine_busy'):.0%}"
            print(
                f"  {connections:>5}  {label:<8}  {one_rate:>10,.0f}  {two_rate:>10,.0f}  "
                f"{two_rate / one_rate if one_rate else 0:>7.2f}  {p99:>15}  {cpu:>14}  "
                f"{cores:>10}  {busy:>12}  {rounds}"
            )
            errors = sum(r.errors for r in one + two)
            if errors:
                print(f"  {'':>5}  ({errors} non-2xx answers or socket errors in these runs)")
    print(
        "  (2xx/s over all rounds; p99: worst round; svc CPU: the instances' CPU time per"
        " request; svc cores: their CPU seconds per second; machine busy: share of all CPUs"
        " in use during the runs, other jobs included)"
    )
    print(
        f"service connections to PostgreSQL after the warm-up and at the end: "
        f"{figures.backends} (both instances, {args.workers} workers each)"
    )
    print("Rows in PostgreSQL vs 2xx answers, every durable run:")
    for name, acked, rows in figures.stored_runs:
        verdict = "PASS" if rows >= acked else "FAIL"
        print(
            f"  {name:14} {rows:>8} rows {acked:>8} 2xx "
            f"{max(0, acked - rows):>3} missing  {verdict}"
        )


def _rate(runs: list[Run]) -> float:
    """2xx per second over several runs together."""
    return sum(run.acknowledged for run in runs) / sum(run.seconds for run in runs)


def _mean(runs: list[Run], attribute: str) -> float:
    return sum(getattr(run, attribute) for run in runs) / len(runs)


if __name__ == "__main__":
    sys.exit(main())
