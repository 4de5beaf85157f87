"""The database server's clock, as seen from this process.

An upsert commits in autocommit, so the check that its clients still wait for it runs
inside PostgreSQL, against the server's clock (queries/upsert_sessions.sql). DatabaseClock
maps this process's monotonic clock onto the server's. The offset is measured over one
round trip and taken at the round trip's end, so a converted instant is never later than
the true one: it is early by at most that round trip, and a deadline errs on the safe side.
It is measured again every `recheck_seconds` (clocks drift, and the server's may be
stepped), and before the next conversion when the server refused a commit that still had
time by this process's clock (`distrust()`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class DatabaseClock:
    def __init__(self, read_server_clock: Callable[[], float], recheck_seconds: float) -> None:
        """`read_server_clock`: the server's clock now, as epoch seconds (a round trip)."""
        self._read = read_server_clock
        self._recheck = recheck_seconds
        self._offset: float | None = None
        self._measured_at = -math.inf
        self._lock = threading.Lock()

    def in_server_time(self, monotonic: float) -> float:
        """`monotonic` (a time.monotonic() instant) as epoch seconds of the server's clock.
        From a database thread only: it may measure the offset first, a round trip."""
        return monotonic + self._current_offset()

    def distrust(self) -> None:
        """Measure the offset again before the next conversion."""
        self._measured_at = -math.inf

    def _current_offset(self) -> float:
        offset = self._offset
        if offset is not None and not self._due():
            return offset
        if offset is not None and not self._lock.acquire(blocking=False):
            return offset  # another thread is measuring; the last figure serves meanwhile
        if offset is None:
            self._lock.acquire()  # nothing to go by yet: wait for the first figure
        try:
            if self._offset is None or self._due():
                server = float(self._read())
                received = time.monotonic()
                self._offset, self._measured_at = server - received, received
            return self._offset
        finally:
            self._lock.release()

    def _due(self) -> bool:
        return time.monotonic() - self._measured_at >= self._recheck
