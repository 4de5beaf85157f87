"""Group commit: many requests' rows share one transaction, and each request still gets its
200 only once its own row is committed.

A request hands its validated row to `write()` and waits. One flusher task per worker takes
what has queued (up to `max_rows`, after at most `window` seconds of waiting for more) and
commits it with one statement; while a batch commits, the next one fills up, so batches grow
with load by themselves. Every wait is bounded: the store's calls time out, so a request
gets its 503 in time when PostgreSQL is down, and the next batch simply tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from sanic.log import logger

from service import metrics
from service.errors import ApiError, DatabaseUnavailable, InvalidSchema, QueueFull, ShuttingDown
from service.session_row import SessionRow
from service.store import RowRejected, SessionStore


@dataclass
class _Waiter:
    """A request waiting for its row's commit."""

    row: SessionRow
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def succeed(self) -> None:
        if not self.done.done():  # the client may have gone away
            self.done.set_result(None)

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)


@dataclass
class _Session:
    """One row to write, and every request that it answers (duplicates merged)."""

    row: SessionRow
    waiters: list[_Waiter]


class BatchWriter:
    def __init__(
        self,
        store: SessionStore,
        *,
        max_rows: int,
        window_seconds: float,
        max_queued: int,
        max_concurrent_commits: int,
        answer_within: float,
    ) -> None:
        self._store = store
        self._answer_within = answer_within
        self._max_rows = max_rows
        self._window = window_seconds
        self._max_queued = max_queued
        self._queue: deque[_Waiter] = deque()
        self._queued_or_closing = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._commit_slots = asyncio.Semaphore(max_concurrent_commits)
        self._commits: set[asyncio.Task[None]] = set()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Deliberately not an app.add_task(): Sanic cancels those at stop, before the
        # requests that wait on this task have been answered. `close()` ends it instead.
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def write(self, row: SessionRow) -> None:
        """Return once the row is committed; raise the error the client should get."""
        if self._closing:
            raise ShuttingDown("server is shutting down; retry shortly")
        if len(self._queue) >= self._max_queued:
            raise QueueFull("too many sessions waiting to be stored; retry shortly")
        waiter = _Waiter(row)
        self._queue.append(waiter)
        metrics.QUEUE_DEPTH.inc()
        self._queued_or_closing.set()
        if len(self._queue) >= self._max_rows:
            self._batch_full.set()
        try:
            # Commits time out by themselves; this bounds the wait behind other batches too
            # (a frozen database holding every connection).
            await asyncio.wait_for(asyncio.shield(waiter.done), self._answer_within)
        except TimeoutError:
            raise DatabaseUnavailable("the commit did not complete in time; retry") from None

    async def write_together(self, rows: Sequence[SessionRow]) -> list[Exception | None]:
        """Commit the rows in one transaction of their own (the batch endpoint); a row the
        database refuses is isolated and fails alone. One result per row: None or the error."""
        if self._closing:
            raise ShuttingDown("server is shutting down; retry shortly")
        waiters = [_Waiter(row) for row in rows]
        await self._commit(_merge(waiters))
        return [waiter.done.exception() for waiter in waiters]

    async def close(self, timeout: float) -> None:
        """Commit what is queued, answer every waiting request, then stop the flusher."""
        self._closing = True
        self._queued_or_closing.set()
        self._batch_full.set()
        if self._flusher is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._flusher), timeout)
        except TimeoutError:
            logger.error("writer did not drain within %.0fs; failing the rest", timeout)
            self._flusher.cancel()
            for waiter in self._queue:
                waiter.fail(DatabaseUnavailable("server stopped before the commit; retry"))

    async def _flush_forever(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._queued_or_closing.clear()
                await self._queued_or_closing.wait()
                continue
            if len(self._queue) < self._max_rows and self._window > 0 and not self._closing:
                await self._wait_for_more_rows()
            await self._commit_slots.acquire()
            batch = [self._queue.popleft() for _ in range(min(self._max_rows, len(self._queue)))]
            metrics.QUEUE_DEPTH.dec(len(batch))
            task = asyncio.get_running_loop().create_task(self._commit(_merge(batch)))
            self._commits.add(task)
            task.add_done_callback(self._commit_finished)
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)

    def _commit_finished(self, task: asyncio.Task[None]) -> None:
        self._commits.discard(task)
        self._commit_slots.release()

    async def _wait_for_more_rows(self) -> None:
        self._batch_full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_full.wait(), self._window)

    async def _commit(self, sessions: list[_Session]) -> None:
        """Write the sessions in one transaction; on a row the database refuses, split the
        batch in halves until that row is alone, so its neighbours still commit."""
        try:
            began = time.perf_counter()
            await self._store.upsert([s.row for s in sessions])
            metrics.COMMIT_DURATION.observe(time.perf_counter() - began)
            metrics.BATCH_SIZE.observe(len(sessions))
        except RowRejected as err:
            metrics.DATABASE_ERRORS.inc()
            if len(sessions) > 1:
                middle = len(sessions) // 2
                await self._commit(sessions[:middle])
                await self._commit(sessions[middle:])
                return
            _fail(sessions, InvalidSchema(f"body: refused by the database ({err})"))
            return
        except ApiError as err:  # DatabaseUnavailable
            metrics.DATABASE_ERRORS.inc()
            _fail(sessions, err)
            return
        except Exception as err:
            logger.exception("commit failed")
            _fail(sessions, err)
            return
        acknowledged = 0
        for session in sessions:
            for waiter in session.waiters:
                waiter.succeed()
                acknowledged += 1
        metrics.SESSIONS_INGESTED.inc(acknowledged)


def _merge(waiters: list[_Waiter]) -> list[_Session]:
    """One row per session id, the newest summary winning (a multi-row upsert cannot touch
    one row twice), sorted by id so concurrent transactions lock rows in the same order and
    cannot deadlock."""
    sessions: dict[str, _Session] = {}
    for waiter in waiters:
        row = waiter.row
        seen = sessions.get(row.session_id)
        if seen is None:
            sessions[row.session_id] = _Session(row, [waiter])
            continue
        seen.waiters.append(waiter)
        if row.timestamp >= seen.row.timestamp:  # same as the upsert: the later one wins ties
            seen.row = row
    return [sessions[key] for key in sorted(sessions)]


def _fail(sessions: list[_Session], error: Exception) -> None:
    for session in sessions:
        for waiter in session.waiters:
            waiter.fail(error)
