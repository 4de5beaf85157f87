"""Ingestion benchmark: `make bench` (or `python -m bench.ingest`).

Starts an embedded PostgreSQL and the service with 2 workers, drives it with wrk from a
separate process on loopback with unique sessions in the SDK's format, and prints, from one
run so that the ratios compare like with like:
  - the ceilings: GET /health and POST /v1/sessions/validate (everything but storage);
  - durable POST /v1/sessions with group commit, and with it off (M3W_BATCH_MAX_ROWS=1);
  - p50/p99 latency at a fixed offered rate (default 2,000 sessions/s);
  - RSS of each worker before and after;
  - rows in PostgreSQL against 2xx answers (no acknowledged session may be missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from service.config import DatabaseUrl
from service.embedded_db import EmbeddedPostgres
from service.migrations import dbmate
from tests.servers import RunningServer, free_port

LUA = Path(__file__).resolve().parent / "sessions.lua"
API_KEY = "bench-key"

TARGET_STORAGE_RATIO = 0.6  # durable >= 0.6 x validate-only
TARGET_GROUP_COMMIT_GAIN = 3.0  # group commit >= 3 x one commit per session
TARGET_P99_MS = 25.0
TARGET_RSS_MB = 100.0


@dataclass
class WrkResult:
    requests: int
    duration_us: int
    acknowledged: int
    http_errors: int
    socket_errors: int
    p50_us: int
    p99_us: int
    max_us: int

    @property
    def per_second(self) -> float:
        return self.acknowledged / (self.duration_us / 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per saturation run")
    # Phones each send one request: real concurrency is high, and a closed loop of few
    # connections measures commit latency rather than throughput.
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rate", type=int, default=2000, help="offered sessions/s, latency run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="m3w-bench-") as scratch:
        database = EmbeddedPostgres(Path(scratch) / "pgdata", free_port(), database="bench")
        with database.running() as url:
            dbmate(url, "up")
            print(f"embedded PostgreSQL ready on port {database.port}", flush=True)
            report = run_all(url, Path(scratch), args)
    print_report(report, args)
    return 0 if report["missing"] == 0 else 1


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk not found: installing Debian's wrk package (apt-get install wrk) ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def start_server(url: DatabaseUrl, workers: int, log: Path, **env: str) -> RunningServer:
    """The service as the Procfile starts it."""
    return RunningServer(
        {"DATABASE_URL": url.libpq, "M3W_API_KEY": API_KEY, **env}, log, workers=workers
    )


def worker_rss_mb(server: RunningServer) -> list[float]:
    """RSS of each process that listens on the port (the workers, not Sanic's manager)."""
    sizes = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            listening = any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                for c in child.net_connections(kind="tcp")
            )
            if listening:
                sizes.append(child.memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return sorted(sizes)


def wrk(
    server: RunningServer,
    args: argparse.Namespace,
    *,
    path: str,
    method: str = "POST",
    duration: int,
    rate: int | None = None,
    connections: int | None = None,
    run: str = "",
) -> WrkResult:
    env = {
        **os.environ,
        "M3W_BENCH_PATH": path,
        "M3W_BENCH_METHOD": method,
        "M3W_BENCH_KEY": API_KEY,
        "M3W_BENCH_RUN": run or uuid.uuid4().hex[:8],
    }
    if rate is not None:
        env["M3W_BENCH_RATE"] = str(rate / args.threads)  # the script paces each thread
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{connections or args.connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        server.url + path,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("M3W_RESULT "))
    return WrkResult(**json.loads(line.removeprefix("M3W_RESULT ")))


def rows_of_run(url: DatabaseUrl, run: str) -> int:
    with psycopg.connect(url.libpq) as conn:
        return conn.execute(
            "SELECT count(*) FROM sessions WHERE session_id LIKE %s", (run + "-%",)
        ).fetchone()[0]


def run_all(url: DatabaseUrl, scratch: Path, args: argparse.Namespace) -> dict:
    report: dict = {"stored_runs": []}
    log = scratch / "server.log"
    warmup = max(2, args.duration // 5)

    group = start_server(url, args.workers, log)
    try:
        report["rss_before"] = worker_rss_mb(group)
        wrk(group, args, path="/v1/sessions", duration=warmup)  # fills the connection pools
        print("measuring GET /health ...", flush=True)
        report["health"] = wrk(group, args, path="/health", method="GET", duration=args.duration)
        print("measuring POST /v1/sessions/validate ...", flush=True)
        report["validate"] = wrk(group, args, path="/v1/sessions/validate", duration=args.duration)
        print("measuring POST /v1/sessions (group commit) ...", flush=True)
        report["durable"] = stored_run(group, args, url, report, "group")
        print(f"measuring latency at {args.rate} sessions/s offered ...", flush=True)
        report["paced"] = stored_run(group, args, url, report, "paced", rate=args.rate)
        report["rss_after"] = worker_rss_mb(group)
    finally:
        group.terminate()

    single = start_server(url, args.workers, log, M3W_BATCH_MAX_ROWS="1")
    try:
        print("measuring POST /v1/sessions (group commit off) ...", flush=True)
        report["one_commit_each"] = stored_run(single, args, url, report, "single")
    finally:
        single.terminate()
    report["missing"] = sum(max(0, acked - rows) for _, acked, rows in report["stored_runs"])
    return report


def stored_run(
    server: RunningServer,
    args: argparse.Namespace,
    url: DatabaseUrl,
    report: dict,
    name: str,
    rate: int | None = None,
) -> WrkResult:
    run = f"{name}{uuid.uuid4().hex[:6]}"
    result = wrk(server, args, path="/v1/sessions", duration=args.duration, rate=rate, run=run)
    time.sleep(0.5)  # let the last in-flight requests finish committing
    report["stored_runs"].append((name, result.acknowledged, rows_of_run(url, run)))
    return result


def print_report(report: dict, args: argparse.Namespace) -> None:
    health, validate = report["health"], report["validate"]
    durable, single, paced = report["durable"], report["one_commit_each"], report["paced"]
    storage_ratio = durable.per_second / validate.per_second
    gain = durable.per_second / single.per_second
    p99_ms = paced.p99_us / 1000
    rss_after = report["rss_after"]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print()
    print(
        f"Media3Watch ingest benchmark: {args.workers} workers, wrk -t{args.threads} "
        f"-c{args.connections}, {args.duration}s per run, loopback, embedded PostgreSQL"
    )
    print(f"  {'GET /health':42} {health.per_second:10,.0f} req/s")
    print(f"  {'POST /v1/sessions/validate (no storage)':42} {validate.per_second:10,.0f} req/s")
    print(
        f"  {'POST /v1/sessions, group commit':42} {durable.per_second:10,.0f} sessions/s"
        f"   p50 {durable.p50_us / 1000:.1f} ms  p99 {durable.p99_us / 1000:.1f} ms"
    )
    print(
        f"  {'POST /v1/sessions, one commit per session':42} {single.per_second:10,.0f}"
        f" sessions/s   p50 {single.p50_us / 1000:.1f} ms  p99 {single.p99_us / 1000:.1f} ms"
    )
    print(
        f"  {'at ' + format(args.rate, ',') + '/s offered (group commit)':42} "
        f"{paced.per_second:10,.0f} sessions/s   p50 {paced.p50_us / 1000:.1f} ms  "
        f"p99 {p99_ms:.1f} ms"
    )
    print(f"  RSS per worker: before {fmt_mb(report['rss_before'])}, after {fmt_mb(rss_after)}")
    print()
    print("Targets")
    print(
        f"  durable / validate      {storage_ratio:5.2f}  (>= {TARGET_STORAGE_RATIO})  "
        f"{verdict(storage_ratio >= TARGET_STORAGE_RATIO)}"
    )
    print(
        f"  group / one commit      {gain:5.2f}  (>= {TARGET_GROUP_COMMIT_GAIN})  "
        f"{verdict(gain >= TARGET_GROUP_COMMIT_GAIN)}"
    )
    print(
        f"  p99 at {args.rate}/s       {p99_ms:5.1f} ms (<= {TARGET_P99_MS})  "
        f"{verdict(p99_ms <= TARGET_P99_MS)}"
    )
    print(
        f"  RSS per worker after    {max(rss_after):5.1f} MB (<= {TARGET_RSS_MB})  "
        f"{verdict(max(rss_after) <= TARGET_RSS_MB)}"
    )
    for name, acked, rows in report["stored_runs"]:
        print(
            f"  rows vs 2xx [{name:6}]   {rows} rows, {acked} acknowledged, "
            f"{max(0, acked - rows)} missing  {verdict(rows >= acked)}"
            + (f"  ({rows - acked} stored but unanswered when wrk stopped)" if rows > acked else "")
        )


def fmt_mb(sizes: list[float]) -> str:
    return ", ".join(f"{size:.1f} MB" for size in sizes)


if __name__ == "__main__":
    sys.exit(main())
