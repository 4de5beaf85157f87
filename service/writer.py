"""Group commit by "smart batching": many requests' rows share one transaction, and each
request still gets its 200 only once its own row is committed.

A request hands its validated row to `write()` and waits. When a commit slot is free and no
commit is in flight, whatever has queued is committed at once: a lone request never waits
for a timer. While a commit is in flight, what arrives queues behind it and goes in the
next commit, as soon as that one ends, so batches grow with the load by themselves and the
commit rate follows what the database can do. Another commit starts beside those in flight
only when the queue holds a full batch (`max_rows`) or its oldest row has waited `window`
seconds (a slow commit must not hold everything behind it). The batch endpoint's rows
(`write_together()`) go through the same queue as one entry, committed in a transaction of
their own.

Commits are started from the request's own call and from the end of the previous commit,
not by a flusher task: no event-loop hand-off between a row being queued and its commit
being sent to a database thread.

Every path is bounded the same way: the queue counts rows against `max_queued` (beyond it,
QUEUE_FULL), commits run in at most `max_concurrent_commits` slots, and every request is
answered by its deadline. A request answered 503 at its deadline leaves the queue at once,
and a commit it was part of does not commit any more (service/store.py): nothing is stored
for it later. A commit slot is held until the database call really ends, so while
PostgreSQL is frozen the work waits in the bounded queue, not in threads.
"""

from __future__ import annotations

import asyncio
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

    def stored(self) -> bool:
        """Whether the commit answered this row 'stored' (even if its request timed out
        in the same instant)."""
        done = self.done
        return done.done() and not done.cancelled() and done.exception() is None


@dataclass(eq=False)
class _Entry:
    """What one request queued: one row, or a batch request's rows (`alone`: committed in
    a transaction of their own)."""

    waiters: list[_Waiter]
    deadline: float
    alone: bool
    queued_at: float


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
        self._max_commits = max_concurrent_commits
        self._queue: deque[_Entry] = deque()
        self._queued_rows = 0
        self._commits: dict[asyncio.Task[None], list[_Session]] = {}
        self._window_timer: asyncio.TimerHandle | None = None
        self._idle: asyncio.Event | None = None  # set once closing and nothing is left
        self._closing = False

    def start(self) -> None:
        """Nothing runs in the background: commits start from `write()` and from the end
        of the commit before them (kept so that the app's start-up reads the same)."""

    async def write(self, row: SessionRow) -> None:
        """Return once the row is committed; raise the error the client should get."""
        entry = self._enqueue([row], alone=False)
        waiter = entry.waiters[0]
        try:
            async with asyncio.timeout(entry.deadline - time.monotonic()):
                await waiter.done
        except TimeoutError:
            if waiter.stored():  # committed in the very instant its time ran out
                return
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
        """Commit what is queued, answer every waiting request, then return."""
        self._closing = True
        self._idle = asyncio.Event()
        self._kick()
        self._note_if_idle()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            logger.error("writer did not drain within %.0fs; failing the rest", timeout)
            # They are answered 503 below: none of their commits may land afterwards. No
            # statement is sent from now on, and one already sent may still commit until
            # its own bound (service/store.py), at most the database timeout after it was
            # sent: its clients are answered once that has passed.
            settled = self._store.stop_commits()
            await asyncio.sleep(max(0.0, settled - time.monotonic()))
            error = DatabaseUnavailable("server stopped before the commit; retry")
            for task, sessions in list(self._commits.items()):
                task.cancel()
                _fail(sessions, error)
            for entry in self._queue:
                for waiter in entry.waiters:
                    waiter.fail(error)
            self._count_queued(-self._queued_rows)
            self._queue.clear()

    def _enqueue(self, rows: Sequence[SessionRow], *, alone: bool) -> _Entry:
        if self._closing:
            raise ShuttingDown("server is shutting down; retry shortly")
        # A batch larger than the whole limit still goes when nothing else waits (it is
        # bounded by M3W_BATCH_MAX_ITEMS), rather than never.
        if self._queued_rows and self._queued_rows + len(rows) > self._max_queued:
            raise QueueFull("too many sessions waiting to be stored; retry shortly")
        now = time.monotonic()
        entry = _Entry([_Waiter(row) for row in rows], now + self._answer_within, alone, now)
        self._queue.append(entry)
        self._count_queued(len(rows))
        self._kick()
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
        self._note_if_idle()

    def _count_queued(self, rows: int) -> None:
        if rows:
            self._queued_rows += rows
            metrics.QUEUE_DEPTH.inc(rows)

    def _kick(self) -> None:
        """Start commits for what is queued, as far as the slots and the policy allow."""
        while self._queue and len(self._commits) < self._max_commits:
            if self._commits and not self._closing and not self._another_now():
                self._arm_window()
                return
            self._start_commit(self._take())

    def _another_now(self) -> bool:
        """With a commit in flight, whether the queue should not wait for it to end: a full
        batch, a batch request, or rows that have waited the whole window."""
        head = self._queue[0]
        return (
            head.alone
            or self._queued_rows >= self._max_rows
            or time.monotonic() - head.queued_at >= self._window
        )

    def _arm_window(self) -> None:
        if self._window_timer is None:
            wait = self._queue[0].queued_at + self._window - time.monotonic()
            self._window_timer = asyncio.get_running_loop().call_later(
                max(0.0, wait), self._window_ended
            )

    def _window_ended(self) -> None:
        self._window_timer = None
        self._kick()

    def _take(self) -> list[_Entry]:
        """The next commit's entries: a batch request alone, or up to max_rows singles."""
        if self._queue[0].alone:
            taken = [self._queue.popleft()]
        else:
            taken = []
            while self._queue and not self._queue[0].alone and len(taken) < self._max_rows:
                taken.append(self._queue.popleft())
        self._count_queued(-sum(len(entry.waiters) for entry in taken))
        if not self._queue and self._window_timer is not None:
            self._window_timer.cancel()
            self._window_timer = None
        return taken

    def _start_commit(self, entries: list[_Entry]) -> None:
        deadline = min(entry.deadline for entry in entries)
        sessions = _merge([w for entry in entries for w in entry.waiters])
        # Sent to a database thread now, not when the task first runs.
        call = self._store.start_upsert([s.row for s in sessions], deadline)
        task = asyncio.get_running_loop().create_task(self._commit(sessions, deadline, call))
        self._commits[task] = sessions
        task.add_done_callback(self._commit_finished)

    def _commit_finished(self, task: asyncio.Task[None]) -> None:
        self._commits.pop(task, None)
        self._kick()  # whatever queued meanwhile goes now, in one commit
        self._note_if_idle()

    def _note_if_idle(self) -> None:
        if self._idle is not None and not self._queue and not self._commits:
            self._idle.set()

    async def _commit(
        self, sessions: list[_Session], deadline: float, call: asyncio.Future[int] | None = None
    ) -> None:
        """Write the sessions in one transaction; on a row the database refuses, split the
        batch in halves until that row is alone, so its neighbours still commit. Each
        failure is counted once in database_errors_total: a refused row when it is isolated,
        not at every split on the way."""
        if call is None:
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
        acknowledged: dict[str, int] = {}
        for session in sessions:
            tenant = session.row.tenant.slug if session.row.tenant else ""
            for waiter in session.waiters:
                if waiter.succeed():
                    acknowledged[tenant] = acknowledged.get(tenant, 0) + 1
        for tenant, count in acknowledged.items():
            metrics.SESSIONS_INGESTED.labels(tenant).inc(count)


def _merge(waiters: list[_Waiter]) -> list[_Session]:
    """One row per session (tenant and id), the newest summary winning (a multi-row upsert
    cannot touch one row twice), sorted so that concurrent transactions lock rows in the
    same order and cannot deadlock."""
    sessions: dict[tuple[int, str], _Session] = {}
    for waiter in waiters:
        row = waiter.row
        seen = sessions.get(row.identity)
        if seen is None:
            sessions[row.identity] = _Session(row, [waiter])
            continue
        seen.waiters.append(waiter)
        if row.timestamp >= seen.row.timestamp:  # same as the upsert: the later one wins ties
            seen.row = row
    return [sessions[key] for key in sorted(sessions)]


def _fail(sessions: list[_Session], error: Exception) -> None:
    for session in sessions:
        for waiter in session.waiters:
            waiter.fail(error)
