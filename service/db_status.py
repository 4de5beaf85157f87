"""One log line when PostgreSQL stops answering, one when it answers again (per worker).

Every failed call during an outage would otherwise say the same thing thousands of times,
and a restart that the service rode out would leave no trace at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sanic.log import logger

from service.errors import DatabaseUnavailable


class DatabaseStatus:
    def __init__(self) -> None:
        self._lost = False
        self._answered_at = float("-inf")

    def answered(self) -> None:
        """A call got its answer from PostgreSQL."""
        self._answered_at = time.monotonic()
        if self._lost:
            self._lost = False
            logger.info("PostgreSQL answers again")

    def failed(self, started_at: float, reason: str) -> None:
        """A call that started at `started_at` found PostgreSQL unreachable. One that started
        before the latest answer is old news (calls stuck in a freeze fail as it ends)."""
        if started_at < self._answered_at or self._lost:
            return
        self._lost = True
        logger.warning("PostgreSQL is unreachable (%s): answering 503 until it is back", reason)


# One per process: each worker reports what it sees.
STATUS = DatabaseStatus()


def watch() -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback for the future of a database call starting now. Reading the future's
    exception also marks it retrieved: a call whose caller gave up must not log "Future
    exception was never retrieved" when it fails later."""
    started_at = time.monotonic()

    def observe(outcome: asyncio.Future[Any]) -> None:
        if outcome.cancelled():
            return
        error = outcome.exception()
        if error is None:
            STATUS.answered()
        elif isinstance(error, DatabaseUnavailable):
            STATUS.failed(started_at, error.message)

    return observe
