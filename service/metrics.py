"""Prometheus metrics, correct across Sanic's worker processes.

prometheus-client's multiprocess mode keeps each process's samples in files of one shared
directory (prepared by service/metrics_dir.py before prometheus_client is imported) and
sums them at scrape time.
"""

from __future__ import annotations

from prometheus_client import (
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
