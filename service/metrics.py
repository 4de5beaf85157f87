"""Prometheus metrics, correct across Sanic's worker processes.

With several workers, prometheus-client's multiprocess mode keeps each process's samples in
files of one shared directory (prepared by the main process, service/metrics_dir.py, before
the workers import this module) and sums them at scrape time. A single process (no such
directory) keeps them in memory.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from service.metrics_dir import VARIABLE

# `tenant` is the tenant's slug (as many values as tenants), empty for a request refused
# before its API key named one.
SESSIONS_INGESTED = Counter(
    "sessions_ingested",
    "Sessions committed to PostgreSQL and acknowledged with a 2xx, by tenant.",
    ["tenant"],
)
SESSIONS_REJECTED = Counter(
    "sessions_rejected",
    "Sessions refused or not stored, by reason (invalid_schema, invalid_api_key, "
    "payload_too_large, unsupported_media_type, rate_limited, database_error, queue_full, "
    "shutting_down, internal_error) and tenant (empty when refused before the API key named "
    "one); a batch counts each item.",
    ["reason", "tenant"],
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
    "database_errors",
    "Failed commits (database unreachable, timed out or failing) and rows PostgreSQL refused, "
    "each counted once.",
)
SESSIONS_PRUNED = Counter(
    "sessions_pruned",
    "Sessions deleted by retention (RETENTION_DAYS or the tenant's --retention-days), by "
    "tenant; counted by the process that pruned them (service/retention.py).",
    ["tenant"],
)


def _multiprocess() -> bool:
    return bool(os.environ.get(VARIABLE))


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker, in Prometheus text format."""
    if not _multiprocess():
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_process(pid: int) -> None:
    """Drop a stopped worker's live gauges (its counters keep counting in the total)."""
    if _multiprocess():
        multiprocess.mark_process_dead(pid)
