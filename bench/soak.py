"""Soak test: `make soak` (or `python -m bench.soak`); not part of `make test`.

Starts an embedded PostgreSQL and the service with 2 workers, offers a fixed rate of unique
sessions from wrk for a long time (default 10 minutes at 1,000 sessions/s), prints the RSS
of each worker every 15 s, and at the end rows in PostgreSQL against 2xx answers and whether
memory stayed flat: each worker's RSS at the end within 10% of its RSS after the warm-up
(the first minute, or the first tenth of a shorter run, while caches and pools fill).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.database import migrated_postgres
from bench.ingest import DURABLE, Bench, WrkResult, ensure_wrk, start_server, worker_rss_mb

SAMPLE_SECONDS = 15
FLAT_WITHIN = 0.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the run")
    parser.add_argument("--rate", type=int, default=1000, help="offered sessions/s")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()

    ensure_wrk()
    with (
        tempfile.TemporaryDirectory(prefix="m3w-soak-") as scratch,
        migrated_postgres(Path(scratch), "soak") as database,
    ):
        server = start_server(database.url, args.workers, Path(scratch) / "server.log")
        try:
            ok = soak(server, database.url, args)
        finally:
            server.terminate()
    return 0 if ok else 1


def soak(server, url, args: argparse.Namespace) -> bool:
    duration = int(args.minutes * 60)
    warmup = min(60.0, duration / 10)
    bench = Bench(server, url, args.threads, stored_runs=[])
    result: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: result.append(
            bench.wrk(
                DURABLE,
                duration=duration,
                connections=args.connections,
                rate=args.rate,
                name="soak",  # counts this run's rows against its 2xx answers
            )
        ),
        daemon=True,
    )
    print(
        f"soak: {args.rate:,} sessions/s for {args.minutes:g} min, {args.workers} workers; "
        f"RSS per worker every {SAMPLE_SECONDS}s (baseline after {warmup:.0f}s of warm-up)",
        flush=True,
    )
    began = time.monotonic()
    load.start()
    baseline: list[float] | None = None
    latest: list[float] = []
    while load.is_alive():
        load.join(SAMPLE_SECONDS)
        elapsed = time.monotonic() - began
        latest = worker_rss_mb(server)
        if baseline is None and elapsed >= warmup:
            baseline = latest
        print(f"  {elapsed:6.0f}s  RSS " + ", ".join(f"{mb:6.1f} MB" for mb in latest), flush=True)
    if not result:
        print("wrk failed: no result")
        return False
    stats = result[0]
    _, _, rows = bench.stored_runs[-1]
    missing = max(0, stats.acknowledged - rows)
    growth = [(end - start) / start for start, end in zip(baseline or latest, latest, strict=False)]
    flat = bool(growth) and all(g <= FLAT_WITHIN for g in growth)
    print()
    print(
        f"offered {args.rate:,}/s for {duration}s: {stats.requests:,} requests, "
        f"{stats.acknowledged:,} acknowledged ({stats.per_second:,.0f}/s), "
        f"{stats.http_errors:,} non-2xx, {stats.socket_errors:,} socket errors, "
        f"p50 {stats.p50_us / 1000:.1f} ms, p99 {stats.p99_us / 1000:.1f} ms"
    )
    print(
        f"rows vs 2xx: {rows:,} rows, {stats.acknowledged:,} acknowledged, {missing} missing  "
        + ("PASS" if missing == 0 else "FAIL")
    )
    print(
        "RSS growth per worker after warm-up: "
        + ", ".join(f"{g:+.1%}" for g in growth)
        + f" (flat within {FLAT_WITHIN:.0%})  "
        + ("PASS" if flat else "FAIL")
    )
    return missing == 0 and flat


if __name__ == "__main__":
    sys.exit(main())
