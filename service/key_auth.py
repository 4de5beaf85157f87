"""Whose request is it: the tenant behind an X-API-Key, per worker, through a bounded cache.

In order:
- M3W_API_KEY, when set, is the tenant `default`'s key, as before tenants existed
  (constant-time comparison).
- With M3W_API_KEY unset, the public `dev-key` is the tenant `default`'s while the database
  holds no API key at all (the first `make run`); the first `m3w keys create` ends that.
- Anything else must be a key from `m3w keys create`: its SHA-256 is looked up in a cache
  and, on a miss, with one indexed query (service/key_store.py). A known key is cached for
  M3W_KEY_CACHE_SECONDS (never past its expiry), an unknown, revoked or expired one for the
  same time, each kind in its own bounded cache: random keys cannot push out the real ones,
  nor grow memory. Revoking a key therefore takes effect on every worker within that time.
  A text that does not even have a key's shape never reaches PostgreSQL.

PostgreSQL unreachable while looking up a key that is not cached: 503 DATABASE_ERROR (a
retry will do), never 401 (which would tell the app its key is bad).

Use is recorded off the request path: each worker notes which keys it saw and writes
their `last_used_at` once a minute (and when it stops), one statement for all of them.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sanic.log import logger

from service.config import DEFAULT_API_KEY, Settings
from service.errors import ApiError, DatabaseUnavailable, InvalidApiKey
from service.key_cache import TtlCache
from service.key_store import FoundKey, KeyStore
from service.keys import DEFAULT_TENANT, Caller, Tenant, could_be_stored_key, key_hash

T = TypeVar("T")

# Entries per cache and worker: far more keys than a deployment uses, a few MB at most.
MAX_CACHED_KEYS = 10_000
RECORD_USE_EVERY_SECONDS = 60
_INVALID = "missing or invalid X-API-Key header"


class KeyAuthenticator:
    def __init__(self, store: KeyStore, settings: Settings) -> None:
        self._store = store
        self._ttl = settings.key_cache_seconds
        if settings.uses_default_api_key:
            self._env_key, self._dev_key = None, DEFAULT_API_KEY.encode()
        else:
            self._env_key, self._dev_key = settings.api_key.encode(), None
        self._known: TtlCache[bytes, Caller] = TtlCache(MAX_CACHED_KEYS)
        self._refused: TtlCache[bytes, bool] = TtlCache(MAX_CACHED_KEYS)
        self._dev_key_allowed: TtlCache[str, bool] = TtlCache(1)
        self._default: Tenant | None = None
        self._in_flight: dict[object, asyncio.Future[object]] = {}
        self._used: set[int] = set()

    async def caller(self, sent: bytes) -> Caller:
        """Who sent this key; raises InvalidApiKey (401) or DatabaseUnavailable (503)."""
        if self._env_key is not None and hmac.compare_digest(sent, self._env_key):
            return Caller(await self._default_tenant())
        if self._dev_key is not None and hmac.compare_digest(sent, self._dev_key):
            if await self._dev_key_accepted():
                return Caller(await self._default_tenant())
            raise InvalidApiKey(
                "dev-key is refused once an API key exists: send a key from `m3w keys create`"
            )
        digest = key_hash(sent)
        caller = self._known.get(digest)
        if caller is None:
            if not could_be_stored_key(sent) or self._refused.get(digest):
                raise InvalidApiKey(_INVALID)
            found = await self._once(digest, lambda: self._look_up(digest))
            if found is None:
                raise InvalidApiKey(_INVALID)
            caller = found.caller
        if caller.key_id is not None:
            self._used.add(caller.key_id)
        return caller

    async def record_use_forever(self) -> None:
        """Write last_used_at of the keys seen, once a minute (a task of the worker)."""
        while True:
            await asyncio.sleep(RECORD_USE_EVERY_SECONDS)
            await self.record_use()

    async def record_use(self) -> None:
        used, self._used = self._used, set()
        if not used:
            return
        try:
            await self._store.record_use(used)
        except Exception as err:
            # Kept for the next round (bounded: only ids of real keys get here).
            self._used |= used
            if not isinstance(err, DatabaseUnavailable):  # an outage is logged once already
                logger.warning("could not record API key use; retrying later", exc_info=True)

    async def _look_up(self, digest: bytes) -> FoundKey | None:
        found = await self._store.find_key(digest)
        if found is None:
            self._refused.put(digest, True, self._ttl)
            return None
        ttl = self._ttl if found.seconds_left is None else min(self._ttl, found.seconds_left)
        self._known.put(digest, found.caller, ttl)
        return found

    async def _default_tenant(self) -> Tenant:
        # Tenants are never deleted: once found, its id holds for the life of the worker.
        if self._default is None:
            tenant = await self._once(DEFAULT_TENANT, lambda: self._store.tenant(DEFAULT_TENANT))
            if tenant is None:
                logger.error("tenant %r is missing: M3W_API_KEY cannot be used", DEFAULT_TENANT)
                raise ApiError("server misconfigured: tenant 'default' is missing")
            self._default = tenant
        return self._default

    async def _dev_key_accepted(self) -> bool:
        allowed = self._dev_key_allowed.get("")
        if allowed is None:
            allowed = not await self._once("any key", self._store.any_key)
            self._dev_key_allowed.put("", allowed, self._ttl)
        return allowed

    async def _once(self, what: object, fetch: Callable[[], Awaitable[T]]) -> T:
        """One lookup at a time per key, however many requests wait for its answer. It
        finishes (and fills the cache) even if the request that started it goes away."""
        pending = self._in_flight.get(what)
        if pending is None:
            pending = asyncio.ensure_future(fetch())
            self._in_flight[what] = pending
            pending.add_done_callback(lambda done: self._finished(what, done))
        return await asyncio.shield(pending)  # type: ignore[return-value]

    def _finished(self, what: object, done: asyncio.Future[object]) -> None:
        self._in_flight.pop(what, None)
        if not done.cancelled():
            done.exception()  # seen: no "exception was never retrieved" if nobody waits
