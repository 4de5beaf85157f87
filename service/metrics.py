"""Prometheus metrics, correct across Sanic's worker processes.

prometheus-client's multiprocess mode keeps each process's samples in files of one shared
directory and sums them at scrape time. It picks that mode when it is first imported, so
the directory must be in the environment before that import, in every process: the main
process prepares it (fresh and empty, at every start) and the workers it spawns inherit it.
Import this module before anything that imports prometheus_client.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from service.config import metrics_dir

_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_shared_directory() -> None:
    if os.environ.get("SANIC_WORKER_NAME"):
        return  # a worker: use the directory its main process prepared
    configured = metrics_dir()
    if configured is None:
        path = tempfile.mkdtemp(prefix="m3w-metrics-")
    else:
        # Samples of a previous run would be summed into this one's: start empty.
        shutil.rmtree(configured, ignore_errors=True)
        configured.mkdir(parents=True)
        path = str(configured)
    os.environ[_DIR_VARIABLE] = path


_prepare_shared_directory()

from prometheus_client import (  # noqa: E402  (must follow the directory set-up above)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

SESSIONS_INGESTED = Counter(
    "sessions_ingested", "Sessions committed to PostgreSQL and acknowledged with a 2xx."
)
SESSIONS_REJECTED = Counter(
    "sessions_rejected",
    "Sessions refused, by reason (invalid_schema, invalid_api_key, payload_too_large, "
    "unsupported_media_type, database_error, queue_full, shutting_down).",
    ["reason"],
)
REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request received to response ready, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "ingest_batch_size",
    "Rows per group-commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
COMMIT_DURATION = Histogram(
    "ingest_commit_duration_seconds",
    "Duration of one group-commit transaction (statement and commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUE_DEPTH = Gauge(
    "ingest_queue_depth",
    "Rows waiting for their commit, summed over live workers.",
    multiprocess_mode="livesum",
)
DATABASE_ERRORS = Counter(
    "database_errors", "Failed database calls (unreachable, timed out, or rows refused)."
)


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker, in Prometheus text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_process(pid: int) -> None:
    """Drop a stopped worker's live gauges (its counters keep counting in the total)."""
    multiprocess.mark_process_dead(pid)
