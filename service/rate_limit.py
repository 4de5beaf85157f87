"""Requests per API key and window, for the whole deployment: every worker of every instance
that shares the database, without a database write per request.

The limit: a key's own `rate_limit` (`m3w keys create/update --rate-limit N`), else
RATE_LIMIT_REQUESTS; 0 is unlimited (the default: every phone of an app shares one key).
M3W_API_KEY and dev-key (tenant `default`, no stored key) follow RATE_LIMIT_REQUESTS and
share one count. Windows are fixed, RATE_LIMIT_WINDOW_SEC long and aligned to the epoch, so
every worker everywhere agrees on them without talking. Every call of an ingest route counts
one request (a batch is one, and validate is one: it is the same key).

How the workers agree (README "Rate limits" gives the precision and the cost):
- Each worker counts what it admits, per key, in memory, and admits without asking anyone
  while it holds a share of the key's budget. About once a second it reconciles every key it
  counted in the current window in one transaction (queries/lock_rate_limit_keys.sql, then
  queries/reconcile_rate_limits.sql): for each key it reads what the other workers admitted
  and claimed (admitted plus the shares they hold), grants itself SHARE_OF_REMAINING of what
  nobody claimed, divided by the workers counting the key (rounded up), and stores its own
  count and claim. An advisory lock per key (taken in key order: no deadlock) makes the
  workers' grants of one key take turns, each seeing the shares granted before it, so the
  claims never add up to more than the limit: while PostgreSQL answers, the deployment
  admits the limit exactly, or less by the shares of workers that the key's requests stopped
  reaching, until they give them back (next point). Each worker writes only its own rows,
  with absolute numbers (a repeated statement changes nothing). Rows of past windows go in
  the same statement.
- A worker that used none of its share since the last reconcile gives it back, so that
  workers the key's requests no longer reach do not sit on its budget.
- A worker whose share runs out reconciles early: at most one reconcile in flight, at most
  one every EARLY_RECONCILE_SECONDS, never one per request; the requests that need it wait
  for it (at most MAX_WAIT_SECONDS). The first request of a key in a window on a worker
  waits for one too. When the whole limit is used or claimed, the key is refused with no
  database call (until the next reconcile, about a second later, shows some given back).
- PostgreSQL failing or slow: a worker that cannot reconcile (or a request that waited
  MAX_WAIT_SECONDS) admits on its own estimate (what the others had admitted at the last
  reconcile, plus what it admitted itself), and logs that once. An outage therefore never
  turns into 429s: while it lasts, the deployment may admit up to (workers x limit) per
  window.
- Memory: a worker keeps counters only for keys seen in the current window, at most
  MAX_TRACKED_KEYS (beyond that, a key is admitted uncounted and that is logged once).
  Keys never appear in logs or metrics, only tenant slugs.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from sanic import HTTPResponse, Request
from sanic.log import logger

from service.config import DatabaseUrl, Settings
from service.errors import RateLimited
from service.keys import Caller
from service.store import DatabaseThreads, queries_module, within_deadline

RECONCILE_EVERY_SECONDS = 1.0
EARLY_RECONCILE_SECONDS = 0.1
MAX_WAIT_SECONDS = 1.0
# A grant takes half of what is unclaimed (split between the key's workers), leaving the
# rest for workers the key's requests reach next.
SHARE_OF_REMAINING = 0.5
MAX_TRACKED_KEYS = 10_000
# The counting key of M3W_API_KEY and dev-key (api_keys ids start at 1).
ENV_KEY_ID = 0

Handler = Callable[..., Awaitable[HTTPResponse]]


@dataclass(slots=True)  # one per limited request: no frozen dataclass's slower __init__
class Verdict:
    """What the limiter decided for one request, and the X-RateLimit-* state it reports."""

    admitted: bool
    limit: int
    remaining: int
    reset: int  # the end of the window, in epoch seconds
    retry_after: int  # whole seconds until then (at least 1)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.admitted:
            headers["Retry-After"] = str(self.retry_after)
        return headers


@dataclass
class _Count:
    """One key in the current window, as this worker knows it."""

    limit: int
    own: int = 0  # admitted here this window
    own_then: int = 0  # as sent in the latest reconcile
    others_admitted: int = 0  # by the other workers, at the latest reconcile
    others_claimed: int = 0  # the same, plus the shares they had not used yet
    share: int = 0  # how many more this worker may admit before it asks again
    waiting: int = 0  # requests waiting for a reconcile to give a share

    @property
    def estimate(self) -> int:
        """The deployment's count as far as this worker knows."""
        return self.others_admitted + self.own

    @property
    def spoken_for(self) -> bool:
        """Whether the whole limit is used or claimed (as of the latest reconcile)."""
        return self.others_claimed + self.own >= self.limit

    def heard(self, row: dict[str, Any], own_then: int) -> None:
        self.own_then = own_then
        self.others_admitted = int(row["others_admitted"])
        self.others_claimed = int(row["others_claimed"])
        # What was admitted after the statement had been sent came out of the share it
        # replaces; the new one is what the database recorded as claimed, less that.
        self.share = max(0, int(row["share"]) - (self.own - own_then))


class RateLimitStore:
    """The reconcile statement, on a thread and connection of its own (opened at the first
    reconcile: a worker that never sees a limited key never connects)."""

    def __init__(self, url: DatabaseUrl, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._queries = queries_module(url, 1, timeout_seconds)
        self._thread = DatabaseThreads(1, backlog=2, name="pg-rate-limits")

    async def reconcile(
        self, worker: str, counts: list[dict[str, Any]], expired_before: int, share: float
    ) -> list[dict[str, Any]]:
        payload = json.dumps(counts)
        keys = json.dumps(sorted(count["key_id"] for count in counts))
        queries = self._queries

        def run() -> list[dict[str, Any]]:
            with queries.transaction():
                queries.lock_rate_limit_keys(keys=keys)
                rows = queries.reconcile_rate_limits(
                    worker=worker,
                    counts=payload,
                    expired_before=expired_before,
                    share_of_remaining=share,
                )
                return [dict(row) for row in rows]

        deadline = time.monotonic() + self._timeout * 2 + 1  # as service/store.py bounds it
        return await within_deadline(self._thread.submit(run, deadline), deadline)

    def close(self) -> None:
        self._thread.stop()
        if self._queries.engine is not None:
            self._queries.engine.dispose()


class RateLimiter:
    """One per worker (app.ctx.limiter)."""

    def __init__(self, store: RateLimitStore, settings: Settings) -> None:
        self._store = store
        self._default_limit = settings.rate_limit_requests
        self._window = settings.rate_limit_window_seconds
        self._worker = str(uuid.uuid4())  # this worker's rows in rate_limit_counts
        self._window_start = 0
        self._counts: dict[int, _Count] = {}
        self._next: asyncio.Task[None] | None = None  # the reconcile in flight or due
        self._last_started = float("-inf")
        self._failing = False
        self._said_full = False

    def limit_of(self, caller: Caller) -> int:
        return self._default_limit if caller.rate_limit is None else caller.rate_limit

    async def admit(self, caller: Caller) -> Verdict | None:
        """Admit or refuse one request of `caller`; None when its key has no limit."""
        limit = self.limit_of(caller)
        if limit == 0:
            return None
        key = ENV_KEY_ID if caller.key_id is None else caller.key_id
        give_up_at = time.monotonic() + MAX_WAIT_SECONDS
        while True:
            now = time.time()
            self._roll(now)
            count = self._count(key, limit)
            if count is None:
                return None
            if count.share > 0:
                count.share -= 1
                return self._admitted(count, now)
            if self._failing or time.monotonic() >= give_up_at:
                # No word from PostgreSQL: this worker's own estimate decides (fail open).
                if count.estimate >= limit:
                    return self._refused(limit, now)
                return self._admitted(count, now)
            if count.spoken_for:
                return self._refused(limit, now)
            count.waiting += 1
            try:
                pending = self._reconcile_soon()
                await asyncio.wait({pending}, timeout=max(0.0, give_up_at - time.monotonic()))
            finally:
                count.waiting -= 1

    async def reconcile_forever(self) -> None:
        """Reconcile the keys counted in the current window about once a second (a task of
        the worker); nothing to do, nothing sent."""
        while True:
            await asyncio.sleep(RECONCILE_EVERY_SECONDS)
            self._roll(time.time())
            if self._counts:
                await asyncio.wait({self._reconcile_soon()})

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
        self._store.close()

    def _roll(self, now: float) -> None:
        start = int(now // self._window) * self._window
        if start != self._window_start:
            self._window_start = start
            self._counts = {}  # the past window's counters are of no more use

    def _count(self, key: int, limit: int) -> _Count | None:
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= MAX_TRACKED_KEYS:
                if not self._said_full:
                    self._said_full = True
                    logger.warning(
                        "rate limits: more than %d limited keys in one window on this worker; "
                        "the others are admitted uncounted until the window ends",
                        MAX_TRACKED_KEYS,
                    )
                return None
            count = self._counts[key] = _Count(limit)
        elif count.limit != limit:
            count.limit = limit  # changed with `m3w keys update` (seen within the key cache)
            count.share = min(count.share, max(0, limit - count.others_claimed - count.own))
        return count

    def _admitted(self, count: _Count, now: float) -> Verdict:
        count.own += 1
        remaining = max(0, count.limit - count.estimate)
        return self._verdict(True, count.limit, remaining, now)

    def _refused(self, limit: int, now: float) -> Verdict:
        return self._verdict(False, limit, 0, now)

    def _verdict(self, admitted: bool, limit: int, remaining: int, now: float) -> Verdict:
        reset = self._window_start + self._window
        return Verdict(admitted, limit, remaining, reset, max(1, math.ceil(reset - now)))

    def _reconcile_soon(self) -> asyncio.Task[None]:
        """The reconcile in flight, or the next one: at most one at a time, and at most one
        every EARLY_RECONCILE_SECONDS, whoever asks and however often."""
        if self._next is None or self._next.done():
            self._next = asyncio.get_running_loop().create_task(
                self._reconcile_when_due(), name="rate-limit-reconcile"
            )
        return self._next

    async def _reconcile_when_due(self) -> None:
        delay = self._last_started + EARLY_RECONCILE_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_started = time.monotonic()
        window = self._window_start
        sent = {key: count.own for key, count in self._counts.items()}
        if not sent:
            return
        counts = [
            {
                "key_id": key,
                "window_start": window,
                "admitted": count.own,
                "lim": count.limit,
                # A worker the key's requests stopped reaching gives its share back.
                "wants": count.waiting > 0 or count.own > count.own_then,
            }
            for key, count in self._counts.items()
        ]
        try:
            rows = await self._store.reconcile(
                self._worker, counts, window - self._window, SHARE_OF_REMAINING
            )
        except Exception as err:
            if not self._failing:
                self._failing = True
                logger.warning(
                    "rate limits: cannot reconcile with PostgreSQL (%s); this worker admits "
                    "on its own counts until it answers",
                    getattr(err, "message", type(err).__name__),
                )
            return
        if self._failing:
            self._failing = False
            logger.info("rate limits: reconciling with PostgreSQL again")
        if window != self._window_start:
            return  # the window ended meanwhile: its totals no longer matter
        for row in rows:
            count = self._counts.get(row["key_id"])
            if count is not None:
                count.heard(row, sent[row["key_id"]])


def limits_rate(handler: Handler) -> Handler:
    """Answer 429 RATE_LIMITED (with Retry-After) once the caller's key used up its window;
    goes after require_api_key, before the body is read."""

    @wraps(handler)
    async def limited(request: Request, *args: object, **kwargs: object) -> HTTPResponse:
        verdict = await request.app.ctx.limiter.admit(request.ctx.caller)
        request.ctx.rate_limit = verdict
        if verdict is not None and not verdict.admitted:
            raise RateLimited(
                f"this API key sent its {verdict.limit} requests of the current window; "
                f"retry in {verdict.retry_after} s",
                verdict.headers(),
            )
        return await handler(request, *args, **kwargs)

    return limited


def add_headers(request: Request, response: HTTPResponse) -> None:
    """X-RateLimit-* on every answer to a limited key, 2xx or not (response middleware)."""
    verdict: Verdict | None = getattr(request.ctx, "rate_limit", None)
    if verdict is not None:
        response.headers.update(verdict.headers())
