"""PostgreSQL access: PugSQL statements from `queries/`, run off the event loop.

PugSQL (SQLAlchemy + psycopg) is synchronous, so every call runs on one of a fixed set of
threads, as many as the connection pool holds: a thread never waits for a connection, and the
event loop never waits for PostgreSQL. Database faults come out as DatabaseUnavailable (503,
retry) or RowRejected (the data is at fault), never as a hang.

Nothing runs for a caller that has given up: every call carries a deadline (when its client
is answered), a call still waiting for a thread at its deadline never starts, and an upsert
never commits once its deadline is near, so a session answered 503 is not stored later when a
frozen server wakes up. An upsert is one statement in autocommit (one round trip, where BEGIN,
statement and COMMIT took three), so PostgreSQL itself makes that last check, at the end of
the statement, against its own clock (service/db_clock.py maps ours onto it). The threads are
daemons: the interpreter joins every other thread at exit (ThreadPoolExecutor's included),
and one stuck in the socket of a frozen server would hold the process past its grace period.

The dashboard rollup refresh has a connection and a thread of its own (it may run for
minutes, and must never take one the commits count on), and is cancelled at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import pugsql
import sqlalchemy.exc
from sanic.log import logger
from sqlalchemy import create_engine

from service import db_status
from service.config import DatabaseUrl
from service.db_clock import DatabaseClock
from service.errors import DatabaseUnavailable
from service.session_row import SessionRow

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"

# An upsert whose statement ends later than this before its deadline rolls back rather than
# commit: its client is about to be answered 503, and a commit then would store a session the
# client was told to send again. (A COMMIT itself takes about a millisecond.)
COMMIT_MARGIN_SECONDS = 0.5
# How often the offset between our clock and the database server's is measured again.
CLOCK_RECHECK_SECONDS = 60.0

T = TypeVar("T")


class RowRejected(Exception):
    """PostgreSQL refused the data itself (SQLSTATE class 22/23), not the connection.
    The message is PostgreSQL's: for the server's log, never for clients."""


class _TooLate(Exception):
    """The caller's deadline passed (or the store closed): the call must not take effect."""


@dataclass(eq=False)
class _Job:
    work: Callable[[], Any]
    deadline: float
    loop: asyncio.AbstractEventLoop
    outcome: asyncio.Future[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.outcome = self.loop.create_future()

    def settle(self, result: Any, error: BaseException | None) -> None:
        """From the database thread: hand the outcome to the event loop."""

        def settle() -> None:
            if self.outcome.done():  # the caller gave up and cancelled it
                return
            if error is None:
                self.outcome.set_result(result)
            else:
                self.outcome.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(settle)


class DatabaseThreads:
    """`size` daemon threads running database calls, with at most `backlog` calls waiting
    for one of them (beyond that a call fails at once: the database is not keeping up)."""

    def __init__(self, size: int, backlog: int, name: str) -> None:
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=backlog)
        self._size = size
        for number in range(size):
            threading.Thread(target=self._serve, name=f"{name}-{number}", daemon=True).start()

    def submit(self, work: Callable[[], T], deadline: float) -> asyncio.Future[T]:
        job = _Job(work, deadline, asyncio.get_running_loop())
        job.outcome.add_done_callback(db_status.watch())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            job.outcome.set_exception(DatabaseUnavailable("database is busy; retry later"))
        return job.outcome

    def stop(self) -> None:
        """Let idle threads end (a thread stuck in a call ends with the process)."""
        for _ in range(self._size):
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.outcome.cancelled() or time.monotonic() >= job.deadline:
                # Its caller has been answered already: the work must not start now.
                job.settle(None, _unavailable(_TooLate()))
                continue
            try:
                job.settle(_call(job.work, job.deadline), None)
            except BaseException as err:
                job.settle(None, err)


class SessionStore:
    def __init__(self, url: DatabaseUrl, pool_size: int, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._closed = False
        self._queries = queries_module(url, pool_size, timeout_seconds, autocommit=True)
        self._clock = DatabaseClock(self._queries.database_clock, CLOCK_RECHECK_SECONDS)
        # Held while an upsert is let go and while commits are stopped: after stop_commits()
        # no statement is sent, and _last_commit_by bounds those already sent.
        self._sending = threading.Lock()
        self._last_commit_by = -math.inf
        # Room for a readiness probe or two beside a full set of commits.
        self._threads = DatabaseThreads(pool_size, backlog=pool_size, name="pg")
        self._refresh_queries = queries_module(url, 1, timeout_seconds)
        self._refresh_thread = DatabaseThreads(1, backlog=1, name="pg-rollups")
        self._refresh_lock = threading.Lock()
        self._refreshing: tuple[threading.Event, psycopg.Connection] | None = None
        self._cancelling: threading.Thread | None = None

    def start_upsert(self, rows: Sequence[SessionRow], deadline: float) -> asyncio.Future[int]:
        """Start committing the rows in one statement; the future gives how many were
        inserted or updated. It settles when the database call has ended, which may be long
        after `deadline` on a frozen server: the caller bounds its own wait. The call never
        starts after `deadline`, and the statement never commits after `deadline -
        COMMIT_MARGIN_SECONDS`, nor later than the store's timeout after it was sent."""
        rows_json = "[" + ",".join(row.json for row in rows) + "]"
        queries = self._queries

        def upsert() -> int:
            commit_by = self._let_go(deadline)
            try:
                return queries.upsert_sessions(
                    rows=rows_json, commit_by=self._clock.in_server_time(commit_by)
                )
            except sqlalchemy.exc.OperationalError as err:
                if not isinstance(err.orig, psycopg.errors.QueryCanceled):
                    raise
                # PostgreSQL cancelled it: its deadline check, or the statement timeout.
                if time.monotonic() < commit_by - COMMIT_MARGIN_SECONDS:
                    # Refused while our clock gave it time left: the clocks have moved.
                    self._clock.distrust()
                raise _TooLate() from err

        return self._threads.submit(upsert, deadline)

    def _let_go(self, deadline: float) -> float:
        """Check that an upsert may still be sent, and when it must commit by at the latest
        (monotonic). The timeout bound keeps a statement that a frozen server or network
        holds from committing long after it was sent: a stop (`stop_commits()`) then knows
        how long the statements in flight may still commit."""
        with self._sending:
            self._in_time(deadline)
            commit_by = min(deadline - COMMIT_MARGIN_SECONDS, time.monotonic() + self._timeout)
            self._last_commit_by = max(self._last_commit_by, commit_by)
            return commit_by

    async def upsert(self, rows: Sequence[SessionRow], deadline: float | None = None) -> int:
        """Commit the rows in one statement, or raise by `deadline` (default: the store's
        own bound)."""
        deadline = deadline or self._default_deadline()
        return await within_deadline(self.start_upsert(rows, deadline), deadline)

    async def refresh_rollups(self, timeout_seconds: float) -> int:
        """Recompute the dashboard rollups of recently written hours (service/rollups.py).
        It may take far longer than a commit (a backlog after downtime), so it has a timeout
        of its own, and its own connection and thread; cancelling the caller (or `close()`)
        cancels the statement in PostgreSQL."""
        queries = self._refresh_queries
        cancelled = threading.Event()

        def refresh() -> int:
            with queries.transaction() as session:
                driver = session.connection().connection.driver_connection
                with self._refresh_lock:
                    if cancelled.is_set() or self._closed:
                        raise _TooLate()
                    self._refreshing = (cancelled, driver)
                try:
                    queries.set_local_statement_timeout(
                        milliseconds=str(int(timeout_seconds * 1000))
                    )
                    return queries.refresh_qoe_rollups()
                finally:
                    with self._refresh_lock:
                        self._refreshing = None

        def abandon() -> None:
            cancelled.set()
            self._cancel_refresh()

        deadline = time.monotonic() + timeout_seconds + 1
        return await within_deadline(
            self._refresh_thread.submit(refresh, deadline), deadline, abandon
        )

    async def ping(self, timeout_seconds: float | None = None) -> bool:
        deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
        deadline = deadline or self._default_deadline()
        try:
            return (
                await within_deadline(self._threads.submit(self._queries.ping, deadline), deadline)
                == 1
            )
        except DatabaseUnavailable:
            return False

    def stop_commits(self) -> float:
        """From now on no upsert is sent: their clients are being answered (shutdown).
        Returns when (monotonic) every statement already sent has committed or never will."""
        with self._sending:
            self._closed = True
            return self._last_commit_by

    def close(self) -> None:
        """Let go of the database; cancel a rollup refresh in flight. A thread still inside
        a call is stuck on a dead server: it is a daemon and does not delay the exit."""
        self.stop_commits()
        self._cancel_refresh()
        if (cancelling := self._cancelling) is not None:
            # Long enough for PostgreSQL to get the cancel request before the process
            # exits; bounded, since a frozen server never answers it.
            cancelling.join(timeout=1)
        self._threads.stop()
        self._refresh_thread.stop()
        for queries in (self._queries, self._refresh_queries):
            if queries.engine is not None:
                queries.engine.dispose()

    def _cancel_refresh(self) -> None:
        with self._refresh_lock:
            refreshing, self._refreshing = self._refreshing, None
        if refreshing is None:
            return
        cancelled, driver = refreshing
        cancelled.set()
        self._cancelling = cancel_in_background(driver, "the rollup refresh")

    def _in_time(self, deadline: float) -> None:
        if self._closed or time.monotonic() >= deadline:
            raise _TooLate()

    def _default_deadline(self) -> float:
        # The driver has its own timeouts; this one bounds the wait in any case, so a
        # request answers 503 in time even if a thread is stuck in a dead socket.
        return time.monotonic() + self._timeout * 2 + 1


async def within_deadline(
    outcome: asyncio.Future[T],
    deadline: float,
    abandon: Callable[[], None] | None = None,
) -> T:
    """The call's result, or DatabaseUnavailable once `deadline` (monotonic) has passed.
    When the caller gives up (the deadline, or its own cancellation) on a call that has not
    ended, `abandon` runs: for a long call, to stop its statement in PostgreSQL too."""
    try:
        return await asyncio.wait_for(
            asyncio.shield(outcome), max(0.0, deadline - time.monotonic())
        )
    except TimeoutError:
        _give_up(outcome, abandon)
        raise DatabaseUnavailable("database did not answer in time; retry later") from None
    except asyncio.CancelledError:
        _give_up(outcome, abandon)
        raise


def _give_up(outcome: asyncio.Future[Any], abandon: Callable[[], None] | None) -> None:
    outcome.cancel()  # the thread skips it if it has not started it yet
    if abandon is not None and outcome.cancelled():  # it had not ended
        abandon()


def queries_module(
    url: DatabaseUrl, pool_size: int, timeout_seconds: float, *, autocommit: bool = False
) -> pugsql.compiler.Module:
    """The named queries of `queries/` on an engine of `pool_size` connections; with
    `autocommit`, each statement commits as it ends (no BEGIN and COMMIT round trips)."""
    queries = pugsql.module(str(QUERIES_DIR))
    queries.setengine(
        create_engine(
            url.sqlalchemy,
            pool_size=pool_size,
            max_overflow=0,
            **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
            pool_timeout=timeout_seconds,
            # No ping on checkout: it is a round trip to PostgreSQL for every commit (as
            # many as the commit's own statements, measured). A connection found dead after
            # a restart is replaced and the call run once more instead (`_call`).
            pool_pre_ping=False,
            connect_args={
                "connect_timeout": max(1, int(timeout_seconds)),
                # A frozen server (or network) must not hold a thread forever.
                "options": f"-c statement_timeout={int(timeout_seconds * 1000)}",
                "tcp_user_timeout": int(timeout_seconds * 1000),
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 2,
                "application_name": "media3watch",
            },
        )
    )
    return queries


def _call(work: Callable[[], T], deadline: float) -> T:
    try:
        try:
            return work()
        except sqlalchemy.exc.DBAPIError as err:
            # The connection was dead (PostgreSQL restarted, or the network dropped it):
            # SQLAlchemy has discarded it and every pooled connection as old as it. Once
            # more on a new connection, if there is time: every call here is safe to repeat
            # (an upsert of the same rows stores the same thing, the others only read or
            # recompute), and a database still down fails it within the connect timeout.
            if not err.connection_invalidated or time.monotonic() >= deadline:
                raise
            return work()
    except (sqlalchemy.exc.DataError, sqlalchemy.exc.IntegrityError) as err:
        raise RowRejected(str(err.orig).splitlines()[0]) from err
    except (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
        _TooLate,
    ) as err:
        raise _unavailable(err) from err


def _unavailable(err: Exception) -> DatabaseUnavailable:
    if isinstance(err, _TooLate):
        return DatabaseUnavailable("the commit did not complete in time; retry")
    return DatabaseUnavailable("database unavailable; retry later")


def cancel_in_background(driver: psycopg.Connection, what: str) -> threading.Thread:
    """Ask PostgreSQL to cancel the statement running on `driver` (`what`, for the log). A
    cancel request is a new connection to PostgreSQL: on a frozen server it would hang, so
    it goes in a daemon thread of its own, returned for a bounded join."""
    thread = threading.Thread(target=_cancel, args=(driver, what), name="pg-cancel", daemon=True)
    thread.start()
    return thread


def _cancel(driver: psycopg.Connection, what: str) -> None:
    try:
        driver.cancel_safe(timeout=10)
    except Exception as err:  # the statement ends with its own timeout anyway
        logger.warning("could not cancel %s: %s", what, err)
