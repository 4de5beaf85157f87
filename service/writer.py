"""Group commit: many requests' rows share one transaction, and each request still gets its
200 only once its own row is committed.

A request hands its validated row to `write()` and waits. One flusher task per worker takes
what has queued (up to `max_rows`, after at most `window` seconds of waiting for more) and
commits it with one statement; while a batch commits, the next one fills up, so batches grow
with load by themselves. The batch endpoint's rows (`write_together()`) go through the same
queue as one entry, committed in a transaction of their own.

Every path is bounded the same way: the queue counts rows against `max_queued` (beyond it,
QUEUE_FULL), commits run in at most `max_concurrent_commits` slots, and every request is
answered by its deadline. A request answered 503 at its deadline leaves the queue at once,
and a commit it was part of does not commit any more (service/store.py): nothing is stored
for it later. A commit slot is held until the database call really ends, so while
PostgreSQL is frozen the work waits in the bounded queue, not in threads.
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


@dataclass(eq=False)
class _Waiter:
    """A request's row waiting for its commit."""

    row: SessionRow
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def succeed(self) -> bool:
        """Answer 'stored'; False when the request was answered already (or went away)."""
        if self.done.done():
            return False
        self.done.set_result(None)
        return True

    def fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
            # Marked as seen: the request may have gone away, and nobody else needs a
            # "Future exception was never retrieved" in the log.
            self.done.exception()

    def give_up(self) -> None:
        self.done.cancel()


@dataclass(eq=False)
class _Entry:
    """What one request queued: one row, or a batch request's rows (`alone`: committed in
    a transaction of their own)."""

    waiters: list[_Waiter]
    deadline: float
    alone: bool


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
        self._queue: deque[_Entry] = deque()
        self._queued_rows = 0
        self._queued_or_closing = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._commit_slots = asyncio.Semaphore(max_concurrent_commits)
        self._commits: dict[asyncio.Task[None], list[_Session]] = {}
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Deliberately not an app.add_task(): Sanic cancels those at stop, before the
        # requests that wait on this task have been answered. `close()` ends it instead.
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def write(self, row: SessionRow) -> None:
        """Return once the row is committed; raise the error the client should get."""
        entry = self._enqueue([row], alone=False)
        done = entry.waiters[0].done
        try:
            await asyncio.wait_for(asyncio.shield(done), entry.deadline - time.monotonic())
        except TimeoutError:
            self._give_up(entry)
            raise DatabaseUnavailable("the commit did not complete in time; retry") from None
        except asyncio.CancelledError:  # the client went away
            self._give_up(entry)
            raise

    async def write_together(self, rows: Sequence[SessionRow]) -> list[Exception | None]:
        """Commit the rows in one transaction of their own (the batch endpoint); a row the
        database refuses is isolated and fails alone. One result per row: None or the error
        (the whole batch gets QUEUE_FULL, SHUTTING_DOWN or DATABASE_ERROR alike)."""
        try:
            entry = self._enqueue(rows, alone=True)
        except ApiError as err:
            return [err] * len(rows)
        outcomes = asyncio.gather(*(w.done for w in entry.waiters), return_exceptions=True)
        try:
            await asyncio.wait_for(asyncio.shield(outcomes), entry.deadline - time.monotonic())
        except TimeoutError:
            self._give_up(entry)
            return [DatabaseUnavailable("the commit did not complete in time; retry")] * len(rows)
        except asyncio.CancelledError:
            self._give_up(entry)
            raise
        return [waiter.done.exception() for waiter in entry.waiters]

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
            # They are answered 503 below: none of their commits may land afterwards.
            self._store.stop_commits()
            self._flusher.cancel()
            error = DatabaseUnavailable("server stopped before the commit; retry")
            for task, sessions in list(self._commits.items()):
                task.cancel()
                _fail(sessions, error)
            for entry in self._queue:
                for waiter in entry.waiters:
                    waiter.fail(error)

    def _enqueue(self, rows: Sequence[SessionRow], *, alone: bool) -> _Entry:
        if self._closing:
            raise ShuttingDown("server is shutting down; retry shortly")
        # A batch larger than the whole limit still goes when nothing else waits (it is
        # bounded by M3W_BATCH_MAX_ITEMS), rather than never.
        if self._queued_rows and self._queued_rows + len(rows) > self._max_queued:
            raise QueueFull("too many sessions waiting to be stored; retry shortly")
        entry = _Entry(
            [_Waiter(row) for row in rows], time.monotonic() + self._answer_within, alone
        )
        self._queue.append(entry)
        self._count_queued(len(rows))
        self._queued_or_closing.set()
        if alone or self._queued_rows >= self._max_rows:
            self._batch_full.set()
        return entry

    def _give_up(self, entry: _Entry) -> None:
        """Its request is answered: drop its rows from the queue (a commit already under
        way will not commit past the deadline)."""
        for waiter in entry.waiters:
            waiter.give_up()
        try:
            self._queue.remove(entry)  # deadlines come in queue order: it is near the head
        except ValueError:
            return  # taken into a commit already
        self._count_queued(-len(entry.waiters))

    def _count_queued(self, rows: int) -> None:
        self._queued_rows += rows
        metrics.QUEUE_DEPTH.inc(rows)

    async def _flush_forever(self) -> None:
        while self._queue or not self._closing:
            if not self._queue:
                self._queued_or_closing.clear()
                await self._queued_or_closing.wait()
                continue
            if (
                not self._queue[0].alone
                and self._queued_rows < self._max_rows
                and self._window > 0
                and not self._closing
            ):
                await self._wait_for_more_rows()
            await self._commit_slots.acquire()
            entries = self._take()
            if not entries:  # every request gave up meanwhile
                self._commit_slots.release()
                continue
            deadline = min(entry.deadline for entry in entries)
            sessions = _merge([w for entry in entries for w in entry.waiters])
            task = asyncio.get_running_loop().create_task(self._commit(sessions, deadline))
            self._commits[task] = sessions
            task.add_done_callback(self._commit_finished)
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)

    def _take(self) -> list[_Entry]:
        """The next commit's entries: a batch request alone, or up to max_rows singles."""
        if not self._queue:
            return []
        if self._queue[0].alone:
            taken = [self._queue.popleft()]
        else:
            taken = []
            while self._queue and not self._queue[0].alone and len(taken) < self._max_rows:
                taken.append(self._queue.popleft())
        self._count_queued(-sum(len(entry.waiters) for entry in taken))
        return taken

    def _commit_finished(self, task: asyncio.Task[None]) -> None:
        self._commits.pop(task, None)
        self._commit_slots.release()

    async def _wait_for_more_rows(self) -> None:
        self._batch_full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_full.wait(), self._window)

    async def _commit(self, sessions: list[_Session], deadline: float) -> None:
        """Write the sessions in one transaction; on a row the database refuses, split the
        batch in halves until that row is alone, so its neighbours still commit. Each
        failure is counted once in database_errors_total: a refused row when it is isolated,
        not at every split on the way."""
        call = self._store.start_upsert([s.row for s in sessions], deadline)
        began = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(call), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            metrics.DATABASE_ERRORS.inc()
            _fail(sessions, DatabaseUnavailable("the commit did not complete in time; retry"))
            # Keep this commit slot until the database call really ends (it will not commit
            # now): on a frozen server new work must wait in the queue, not pile up in threads.
            await asyncio.wait([call])
            if not call.cancelled():
                call.exception()  # seen; its outcome no longer matters
            return
        except RowRejected as err:
            if len(sessions) > 1:
                middle = len(sessions) // 2
                await self._commit(sessions[:middle], deadline)
                await self._commit(sessions[middle:], deadline)
                return
            metrics.DATABASE_ERRORS.inc()
            session_id = sessions[0].row.session_id
            # PostgreSQL's text names constraints and values: for the log, not the client.
            logger.warning("PostgreSQL refused session %r: %s", session_id, err)
            message = f"session {session_id!r}: the database refused to store it"
            _fail(sessions, InvalidSchema(message, [{"field": "body", "message": message}]))
            return
        except ApiError as err:  # DatabaseUnavailable
            metrics.DATABASE_ERRORS.inc()
            _fail(sessions, err)
            return
        except Exception as err:
            logger.exception("commit failed")
            metrics.DATABASE_ERRORS.inc()
            _fail(sessions, err)
            return
        metrics.COMMIT_DURATION.observe(time.perf_counter() - began)
        metrics.BATCH_SIZE.observe(len(sessions))
        acknowledged = sum(waiter.succeed() for s in sessions for waiter in s.waiters)
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
