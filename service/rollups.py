"""Keeps the dashboard rollups fresh: `refresh_qoe_rollups()` every M3W_ROLLUP_REFRESH_SECONDS.

Dashboards stay exact without it (they aggregate un-refreshed hours from `sessions` on the
fly), but slow down as such hours pile up, and long breakdowns stop moving: docs/grafana.md.
Every worker runs one; a refresh that finds another running returns at once. It runs on a
connection and a thread of its own (SessionStore.refresh_rollups), never on those the commits
count on, and stopping the worker cancels this task, which cancels the statement in
PostgreSQL: a refresh in the middle of a backlog never holds up a shutdown.
"""

from __future__ import annotations

import asyncio

from sanic.log import logger

from service.store import SessionStore

# A refresh after long downtime or a bulk import recomputes every hour written meanwhile
# (the first refresh of 10M sessions took 174 s here): let it finish
# rather than roll back at the same point every minute.
REFRESH_TIMEOUT_SECONDS = 3600


async def refresh_rollups_forever(store: SessionStore, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await store.refresh_rollups(REFRESH_TIMEOUT_SECONDS)
        except Exception:  # never CancelledError: stopping the worker cancels this task
            logger.warning("dashboard rollup refresh failed; retrying later", exc_info=True)
