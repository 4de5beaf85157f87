"""PostgreSQL access: PugSQL statements from `queries/`, run off the event loop.

PugSQL (SQLAlchemy + psycopg) is synchronous, so every call runs in a bounded thread pool
whose size equals the connection pool's: a thread never waits for a connection, and the
event loop never waits for PostgreSQL. Database faults come out as DatabaseUnavailable
(503, retry) or RowRejected (the data is at fault), never as a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pugsql
import sqlalchemy.exc
from sqlalchemy import create_engine

from service.config import DatabaseUrl
from service.errors import DatabaseUnavailable
from service.session_row import SessionRow

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"

T = TypeVar("T")


class RowRejected(Exception):
    """PostgreSQL refused the data itself (SQLSTATE class 22/23), not the connection."""


class SessionStore:
    def __init__(self, url: DatabaseUrl, pool_size: int, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._queries = pugsql.module(str(QUERIES_DIR))
        self._queries.setengine(
            create_engine(
                url.sqlalchemy,
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=timeout_seconds,
                # After a PostgreSQL restart the pooled connections are dead; test each on
                # checkout so the first request after recovery does not fail.
                pool_pre_ping=True,
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
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="pg")

    async def upsert(self, rows: Sequence[SessionRow]) -> int:
        """Commit the rows in one statement; returns how many were inserted or updated."""
        rows_json = "[" + ",".join(row.json for row in rows) + "]"
        return await self._run(self._queries.upsert_sessions, rows=rows_json)

    async def refresh_rollups(self, timeout_seconds: float) -> int:
        """Recompute the dashboard rollups of recently written hours (service/rollups.py).
        It may take far longer than a commit (a backlog after downtime), so it gets a
        timeout of its own; one thread of the pool is busy meanwhile, not the writer."""
        queries = self._queries

        def refresh() -> int:
            with queries.transaction():
                queries.set_local_statement_timeout(milliseconds=str(int(timeout_seconds * 1000)))
                return queries.refresh_qoe_rollups()

        return await self._run(refresh, wait_seconds=timeout_seconds + 1)

    async def ping(self) -> bool:
        try:
            return await self._run(self._queries.ping) == 1
        except DatabaseUnavailable:
            return False

    def close(self) -> None:
        # The writer has drained; a thread still inside a call is stuck on a dead server
        # and waiting for it would only hang the shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._queries.engine is not None:
            self._queries.engine.dispose()

    async def _run(
        self, statement: Callable[..., T], wait_seconds: float | None = None, **params: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, lambda: _call(statement, params))
        # The driver has its own timeouts; this one bounds the wait in any case, so a
        # request answers 503 in time even if a thread is stuck in a dead socket.
        wait_seconds = wait_seconds or self._timeout * 2 + 1
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait_seconds)
        except TimeoutError:
            raise DatabaseUnavailable("database did not answer in time; retry later") from None


def _call(statement: Callable[..., T], params: dict[str, Any]) -> T:
    try:
        return statement(**params)
    except (sqlalchemy.exc.DataError, sqlalchemy.exc.IntegrityError) as err:
        raise RowRejected(str(err.orig).splitlines()[0]) from err
    except (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,
    ) as err:
        raise DatabaseUnavailable("database unavailable; retry later") from err
