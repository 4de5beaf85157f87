"""Where a worker's time goes on the durable path: `python -m bench.profile`.

Starts an embedded PostgreSQL and the service with one worker (`--single-process`, so the
profiled process is the one serving), drives POST /v1/sessions with wrk in a closed loop at
each `--connections`, and samples the worker with py-spy (`pip install -e ".[dev]"`
installs it) meanwhile. For each run it prints the share of samples per thread and the
functions most often on top of the stack (self) and anywhere on it (inclusive), with idle
waits (epoll, locks, queue gets) left out unless `--idle`, and keeps py-spy's collapsed
stacks (`--keep DIR`) for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.database import migrated_postgres
from bench.ingest import DURABLE, Bench, WrkResult, ensure_wrk, start_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=int, default=8, help="seconds sampled per run")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true", help="count idle samples too")
    parser.add_argument(
        "--gil", action="store_true", help="only samples holding the GIL: where the CPU goes"
    )
    parser.add_argument("--keep", type=Path, help="directory for the collapsed stacks")
    args = parser.parse_args()

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="m3w-profile-") as scratch:
        root = Path(scratch)
        with migrated_postgres(root) as database:
            server = start_server(database.url, 1, root / "server.log")
            bench = Bench(server, database.url, threads=2, stored_runs=[])
            try:
                bench.wrk(DURABLE, duration=2, connections=32, name="warmup")
                for connections in args.connections:
                    out = (args.keep or root) / f"profile-c{connections}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    result = profile_run(py_spy, bench, server.process.pid, connections, out, args)
                    print(
                        f"\n=== {connections} connection(s): {result.per_second:,.0f} sessions/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms ==="
                    )
                    summarise(out, args.top)
            finally:
                server.terminate()
    return 0


def profile_run(
    py_spy: str, bench: Bench, pid: int, connections: int, out: Path, args: argparse.Namespace
) -> WrkResult:
    command = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(args.duration),
        "--rate",
        str(args.rate),
        "--threads",
        "--nonblocking",  # do not pause the worker to sample it
        *(["--gil"] if getattr(args, "gil", False) else []),
        "--format",
        "raw",
        "--output",
        str(out),
        *(["--idle"] if args.idle else []),
    ]
    bench.settle()  # the previous run's cut-off requests are logged first (bench/ingest.py)
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outcome: dict = {}

    def drive() -> None:
        outcome["result"] = bench.wrk(
            DURABLE, duration=args.duration + 1, connections=connections, name=f"p{connections}"
        )

    driver = threading.Thread(target=drive)
    driver.start()
    recorder.wait()
    driver.join()
    return outcome["result"]


def summarise(collapsed: Path, top: int) -> None:
    """py-spy's raw format: one line per distinct stack, `thread;frame;frame... count`."""
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            # A line that does not end in a count is part of a stack broken by a line break
            # in a frame's name (seen once, at 256 connections: the line ended in source
            # text, `json(results.body())`). Its samples are left out.
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
    if not total:
        print("  no samples (is py-spy allowed to trace the worker?)")
        return
    print(f"  {total} busy samples; by thread:")
    for name, count in threads.most_common():
        print(f"    {100 * count / total:5.1f}%  {name}")
    print("  self (on top of the stack):")
    for frame, count in own.most_common(top):
        print(f"    {100 * count / total:5.1f}%  {frame}")
    print("  inclusive (anywhere on the stack):")
    for frame, count in inclusive.most_common(top):
        print(f"    {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    sys.exit(main())
