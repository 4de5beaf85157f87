"""Retention: delete the sessions past their tenant's cutoff, keep the dashboard rollups.

A pass (the service's own every M3W_RETENTION_INTERVAL_SECONDS, or `m3w prune`):

1. takes the PostgreSQL advisory lock `hashtext('m3w_retention')` (session level, try: a
   process that finds it held skips the round), so one process at a time prunes across
   every worker and instance;
2. per tenant whose retention (its own `--retention-days`, else RETENTION_DAYS; 0: forever)
   is set: the cutoff is now minus that many days, truncated to the UTC hour, so only whole
   hours are pruned and each pruned hour's rollup rows hold all of it. It seals the hours
   before the cutoff (refreshes every dirty hour, then moves the tenant's watermark; see
   db/migrations/20261127110000_add_retention.sql), then deletes their sessions BATCH_SIZE
   rows per transaction, oldest first, by index: the deletes dirty nothing, and no refresh
   recomputes those hours from the sessions left;
3. with ROLLUP_RETENTION_DAYS set, deletes the rollup rows of the UTC days before now minus
   that many days, BATCH_SIZE rows per transaction.

Each statement is its own transaction (the connection is in autocommit), so a pass never
holds a long lock on `sessions`, and stopping it between two batches loses nothing. In the
service it runs on a connection and a thread of its own, opened for the pass only (never
one the commits count on), and stopping the worker cancels it, statement included.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy.exc
from sanic.log import logger

from service import metrics
from service.config import DatabaseUrl, Settings
from service.rollups import REFRESH_TIMEOUT_SECONDS
from service.store import (
    DatabaseThreads,
    cancel_in_background,
    queries_module,
    within_deadline,
)

# Rows per transaction: a batch of this size deletes (with its index entries and trigger) in
# well under a second, and row locks are all it takes.
BATCH_SIZE = 2000
# A pass stops (and the next one carries on) after this long, whatever is left.
PASS_DEADLINE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class TenantPrune:
    tenant_id: int
    slug: str
    retention_days: int  # in effect: its own, else RETENTION_DAYS; 0 keeps forever
    own: bool  # the tenant's own --retention-days (else RETENTION_DAYS)
    cutoff: datetime | None  # sessions that ended before it go; None: kept forever
    sessions: int  # deleted (or, in a dry run, that would be)


@dataclass(frozen=True)
class PassReport:
    ran: bool  # False: another process held the lock; nothing was done
    dry_run: bool
    tenants: tuple[TenantPrune, ...] = ()
    rollup_cutoff: datetime | None = None
    rollup_rows: int = 0
    seconds: float = 0.0

    @property
    def sessions(self) -> int:
        return sum(t.sessions for t in self.tenants)

    def summary(self) -> str:
        per_tenant = ", ".join(f"{t.slug} {t.sessions}" for t in self.tenants if t.cutoff)
        return (
            f"{self.sessions} sessions ({per_tenant or 'no tenant has a retention'}) and "
            f"{self.rollup_rows} rollup rows in {self.seconds:.1f} s"
        )


def session_cutoff(now: datetime, days: int) -> datetime | None:
    """Sessions that ended before this go: `days` before `now`, down to the UTC hour."""
    if days <= 0:
        return None
    return (now.astimezone(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def rollup_cutoff(now: datetime, days: int) -> datetime | None:
    """Rollup rows of the UTC days before this go (the hourly rows with their days)."""
    if days <= 0:
        return None
    moment = now.astimezone(UTC) - timedelta(days=days)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class Stopped(Exception):
    """The pass was stopped between two batches (the worker is stopping)."""


def connect(url: DatabaseUrl, timeout_seconds: float) -> Any:
    """The queries on a connection of their own in autocommit: each statement of a pass is
    its own transaction, while the session-level lock holds for the whole pass."""
    queries = queries_module(url, 1, timeout_seconds)
    queries.setengine(queries.engine.execution_options(isolation_level="AUTOCOMMIT"))
    return queries


def prune_pass(
    queries: Any,
    *,
    retention_days: int,
    rollup_retention_days: int,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    pruned: Callable[[str, int], None] | None = None,
    running: Callable[[psycopg.Connection | None], None] | None = None,
) -> PassReport:
    """One pass on `queries` (from connect()); blocking. `pruned(slug, n)` is told of every
    batch deleted; `running` gets the driver connection while the pass uses it (to cancel)."""
    began = time.monotonic()
    now = now or datetime.now(UTC)
    with queries.transaction() as session:  # one connection: the lock is held on it
        if running is not None:
            running(session.connection().connection.driver_connection)
        try:
            # The seal refreshes the dirty hours, which may take long after downtime.
            queries.prune_statement_timeout(milliseconds=str(REFRESH_TIMEOUT_SECONDS * 1000))
            if not queries.prune_try_lock():
                return PassReport(ran=False, dry_run=dry_run, seconds=time.monotonic() - began)
            try:
                tenants = tuple(
                    _prune_tenant(
                        queries, t, retention_days, now, dry_run, batch_size, stop, pruned
                    )
                    for t in list(queries.prune_tenants())
                )
                cutoff = rollup_cutoff(now, rollup_retention_days)
                rollup_rows = 0
                if cutoff is not None and dry_run:
                    rollup_rows = queries.prune_count_rollups(cutoff=cutoff)
                elif cutoff is not None:
                    rollup_rows = _in_batches(
                        lambda: queries.prune_rollups_batch(cutoff=cutoff, batch_size=batch_size),
                        batch_size,
                        stop,
                    )
            finally:
                # On a broken connection the lock went with it.
                with contextlib.suppress(Exception):
                    queries.prune_unlock()
        finally:
            if running is not None:
                running(None)
    return PassReport(
        ran=True,
        dry_run=dry_run,
        tenants=tenants,
        rollup_cutoff=cutoff,
        rollup_rows=rollup_rows,
        seconds=time.monotonic() - began,
    )


def _prune_tenant(
    queries: Any,
    tenant: dict[str, Any],
    default_days: int,
    now: datetime,
    dry_run: bool,
    batch_size: int,
    stop: threading.Event | None,
    pruned: Callable[[str, int], None] | None,
) -> TenantPrune:
    own = tenant["retention_days"]
    days = default_days if own is None else own
    cutoff = session_cutoff(now, days)
    count = 0
    if cutoff is not None and dry_run:
        count = queries.prune_count_sessions(tenant_id=tenant["id"], cutoff=cutoff)
    elif cutoff is not None:
        if stop is not None and stop.is_set():
            raise Stopped()
        queries.prune_seal_hours(tenant_id=tenant["id"], cutoff=cutoff)

        def batch() -> int:
            deleted = queries.prune_sessions_batch(
                tenant_id=tenant["id"], cutoff=cutoff, batch_size=batch_size
            )
            if deleted and pruned is not None:
                pruned(tenant["slug"], deleted)
            return deleted

        count = _in_batches(batch, batch_size, stop)
    return TenantPrune(tenant["id"], tenant["slug"], days, own is not None, cutoff, count)


def _in_batches(batch: Callable[[], int], batch_size: int, stop: threading.Event | None) -> int:
    total = 0
    while True:
        if stop is not None and stop.is_set():
            raise Stopped()
        deleted = batch()
        total += deleted
        if deleted < batch_size:
            return total


class Pruner:
    """The service's passes: on a thread and a connection of their own (opened for the pass
    and closed after it), cancelled by close() or by cancelling run_pass()."""

    def __init__(
        self,
        url: DatabaseUrl,
        timeout_seconds: float,
        retention_days: int,
        rollup_retention_days: int,
    ) -> None:
        self._retention_days = retention_days
        self._rollup_retention_days = rollup_retention_days
        self._queries = connect(url, timeout_seconds)
        self._thread = DatabaseThreads(1, backlog=1, name="pg-retention")
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._driver: psycopg.Connection | None = None
        self._closed = False

    async def run_pass(self) -> PassReport:
        stop = threading.Event()

        def running(driver: psycopg.Connection | None) -> None:
            with self._lock:
                if driver is not None and (self._closed or stop.is_set()):
                    raise Stopped()
                self._stop, self._driver = (stop, driver) if driver is not None else (None, None)

        def work() -> PassReport:
            try:
                return prune_pass(
                    self._queries,
                    retention_days=self._retention_days,
                    rollup_retention_days=self._rollup_retention_days,
                    stop=stop,
                    pruned=_count_pruned,
                    running=running,
                )
            finally:
                # No connection idles between passes (an hour apart by default).
                self._queries.engine.dispose()

        def abandon() -> None:
            stop.set()
            self._cancel()

        deadline = time.monotonic() + PASS_DEADLINE_SECONDS
        return await within_deadline(self._thread.submit(work, deadline), deadline, abandon)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._cancel()
        self._thread.stop()

    def _cancel(self) -> None:
        with self._lock:
            stop, driver = self._stop, self._driver
        if stop is None or driver is None:
            return
        stop.set()
        cancel_in_background(driver, "the retention pass")


def _count_pruned(slug: str, deleted: int) -> None:
    metrics.SESSIONS_PRUNED.labels(tenant=slug).inc(deleted)


async def prune_forever(pruner: Pruner, every_seconds: float) -> None:
    """Every `every_seconds`, one pass; the worker that gets the lock does it."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            report = await pruner.run_pass()
        except Exception:  # never CancelledError: stopping the worker cancels this task
            logger.warning("retention pass failed; retrying next round", exc_info=True)
            continue
        if report.ran:
            logger.info("retention: deleted %s", report.summary())
        else:
            logger.info("retention: another process is pruning; skipped this round")


def run_command(dry_run: bool, url: DatabaseUrl, settings: Settings) -> int:
    """`m3w prune [--dry-run]`: one pass now, its report on stdout. Exit codes as the other
    commands: 0 done, 1 refused (another process is pruning), 2 the database is at fault."""
    try:
        queries = connect(url, settings.db_timeout_seconds)
        try:
            report = prune_pass(
                queries,
                retention_days=settings.retention_days,
                rollup_retention_days=settings.rollup_retention_days,
                dry_run=dry_run,
            )
        finally:
            queries.engine.dispose()
    except sqlalchemy.exc.DBAPIError as err:
        first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        if "does not exist" in first:
            first += " (run `m3w migrate`)"
        print(f"m3w: cannot prune the database at {url.redacted()}: {first}", file=sys.stderr)
        return 2
    if not report.ran:
        print(
            "m3w: another process is pruning now (advisory lock hashtext('m3w_retention')); "
            "nothing was done",
            file=sys.stderr,
        )
        return 1
    for line in report_lines(report, settings):
        print(line)
    return 0


def report_lines(report: PassReport, settings: Settings) -> list[str]:
    verb = "would delete" if report.dry_run else "deleted"
    lines = []
    for t in report.tenants:
        source = "its own --retention-days" if t.own else "RETENTION_DAYS"
        if t.cutoff is None:
            lines.append(f"{t.slug}: kept forever ({source}=0)")
        else:
            lines.append(
                f"{t.slug}: {verb} {t.sessions} sessions that ended before "
                f"{t.cutoff:%Y-%m-%d %H:%M} UTC ({t.retention_days} days, {source})"
            )
    if report.rollup_cutoff is None:
        lines.append("rollups: kept forever (ROLLUP_RETENTION_DAYS=0)")
    else:
        lines.append(
            f"rollups: {verb} {report.rollup_rows} rows of the days before "
            f"{report.rollup_cutoff:%Y-%m-%d} UTC "
            f"(ROLLUP_RETENTION_DAYS={settings.rollup_retention_days})"
        )
    total = f"{report.sessions} sessions and {report.rollup_rows} rollup rows"
    if report.dry_run:
        lines.append(f"Dry run: would delete {total}; nothing was deleted.")
    else:
        lines.append(f"Deleted {total} in {report.seconds:.1f} s.")
    return lines
