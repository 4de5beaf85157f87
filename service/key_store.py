"""The service's reads of tenants and API keys, and its writes of `last_used_at`.

They run the way every database call of the service does (service/store.py: PugSQL on a
daemon thread, never on the event loop, bounded by a deadline), on a thread and connection
of their own: a flood of requests with unknown keys can keep this one thread busy, never a
thread or connection the commits count on. At most LOOKUP_BACKLOG calls wait for it; beyond
that a call fails at once with DatabaseUnavailable (503, retry), rather than queueing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from service.config import DatabaseUrl
from service.keys import Caller, Tenant
from service.store import DatabaseThreads, queries_module, within_deadline

LOOKUP_BACKLOG = 64


@dataclass(frozen=True)
class FoundKey:
    caller: Caller
    seconds_left: float | None  # until it expires; None: never


class KeyStore:
    def __init__(self, url: DatabaseUrl, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._queries = queries_module(url, 1, timeout_seconds)
        self._thread = DatabaseThreads(1, backlog=LOOKUP_BACKLOG, name="pg-keys")

    async def find_key(self, digest: bytes) -> FoundKey | None:
        """The usable key with this SHA-256 (None: unknown, revoked or expired); raises
        DatabaseUnavailable when PostgreSQL does not answer in time."""
        row = await self._run(lambda: self._queries.api_key_tenant(key_hash=digest))
        if row is None:
            return None
        tenant = Tenant(row["tenant_id"], row["slug"])
        return FoundKey(Caller(tenant, row["key_id"], row["rate_limit"]), row["seconds_left"])

    async def tenant(self, slug: str) -> Tenant | None:
        row = await self._run(lambda: self._queries.tenant_by_slug(slug=slug))
        return None if row is None else Tenant(row["id"], row["slug"])

    async def any_key(self) -> bool:
        return bool(await self._run(self._queries.any_api_key))

    async def record_use(self, key_ids: Iterable[int]) -> int:
        """Set last_used_at of these keys (skipping any written in the last minute)."""
        ids = json.dumps(sorted(key_ids))
        return await self._run(lambda: self._queries.touch_api_keys(ids=ids))

    def close(self) -> None:
        self._thread.stop()
        if self._queries.engine is not None:
            self._queries.engine.dispose()

    async def _run(self, work):  # type: ignore[no-untyped-def]
        # The driver has its own timeouts; this bounds the wait in any case (store.py).
        deadline = time.monotonic() + self._timeout * 2 + 1
        return await within_deadline(self._thread.submit(work, deadline), deadline)
