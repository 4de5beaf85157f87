"""The Sanic application: `sanic service.app:create_app --factory`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from sanic import Sanic
from sanic.log import logger

from service import (
    connections,
    health,
    metrics,
    metrics_dir,
    observability,
    openapi_doc,
    rate_limit,
    sessions,
    stopping,
    supervision,
)
from service.config import Settings, load_settings
from service.errors import JsonErrorHandler
from service.key_auth import KeyAuthenticator
from service.key_store import KeyStore
from service.rate_limit import RateLimiter, RateLimitStore
from service.retention import Pruner, prune_forever
from service.rollups import refresh_rollups_forever
from service.store import SessionStore
from service.writer import BatchWriter


def create_app(*, settings: Settings | None = None) -> Sanic:
    # Keyword-only: the sanic CLI calls a factory with its argv Namespace when it can.
    settings = settings or load_settings()
    if settings.database_url is None:
        raise SystemExit(
            "DATABASE_URL is not set: set it to your PostgreSQL "
            "(postgres://user:pass@host:5432/db), or run `m3w serve` for the embedded one"
        )
    app = connections.GuardedSanic("media3watch", error_handler=JsonErrorHandler())
    app.ctx.settings = settings
    # Sanic's own cap, for the largest body any route takes; each route checks its own.
    app.config.REQUEST_MAX_SIZE = max(settings.max_body_bytes, settings.batch_endpoint_max_bytes)
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.graceful_shutdown_seconds
    # No sanic-ext, should it be installed: its default extensions cost about a third of the
    # throughput of a trivial route (measured), and the OpenAPI document is our own.
    app.config.AUTO_EXTEND = False
    connections.configure(app, settings)  # header/body/keep-alive timeouts
    # Our own OpenAPI document, built from the models the service validates with.
    app.ctx.openapi = openapi_doc.build_document(settings)
    app.blueprint(openapi_doc.bp)
    app.blueprint(health.bp)
    app.blueprint(sessions.bp)
    app.blueprint(observability.bp)
    app.on_request(observability.start_timer)
    app.on_request(stopping.refuse_when_stopping)
    app.on_response(observability.observe_duration)
    app.on_response(stopping.close_when_stopping)
    app.on_response(rate_limit.add_headers)  # X-RateLimit-* on every answer to a limited key
    app.register_listener(supervision.supervise_workers, "main_process_ready")
    app.register_listener(stopping.catch_stop_signals, "after_server_start")
    metrics_dir.attach(app)  # with workers: their shared samples directory
    app.register_listener(_open_resources, "before_server_start")
    app.register_listener(_note_stop_requested, "before_server_stop")
    app.register_listener(_drain_and_close, "after_server_stop")
    return app


async def _open_resources(app: Sanic) -> None:
    settings: Settings = app.ctx.settings
    assert settings.database_url is not None
    host = app.state.host or settings.host  # what Sanic binds (`sanic --host`, `m3w serve`)
    if settings.exposes_default_key(host):
        logger.warning(
            "M3W_API_KEY is the public default %r while listening on %s: anyone who can reach "
            "this port can write sessions while the database holds no API key. Create keys "
            "(`m3w keys create`) or set M3W_API_KEY to a secret.",
            "dev-key",
            host,
        )
    app.ctx.store = SessionStore(
        settings.database_url, settings.db_pool_size, settings.db_timeout_seconds
    )
    app.ctx.writer = BatchWriter(
        app.ctx.store,
        max_rows=settings.batch_max_rows,
        window_seconds=settings.batch_window_ms / 1000,
        max_queued=settings.queue_max_rows,
        max_concurrent_commits=settings.db_pool_size,
        # Past the store's own bound (2 x timeout + 1 s): with the default 3 s, 8 s, inside
        # the SDK's 10 s read timeout, so the phone hears the 503 rather than giving up.
        answer_within=settings.db_timeout_seconds * 2 + 2,
    )
    app.ctx.writer.start()
    # API keys: looked up on a connection and thread of their own (service/key_auth.py).
    app.ctx.key_store = KeyStore(settings.database_url, settings.db_timeout_seconds)
    app.ctx.keys = KeyAuthenticator(app.ctx.key_store, settings)
    # Per-key rate limits, reconciled across workers and instances (service/rate_limit.py).
    app.ctx.limiter = RateLimiter(
        RateLimitStore(settings.database_url, settings.db_timeout_seconds), settings
    )
    # Background loops are our own tasks rather than app.add_task()s: Sanic logs a warning
    # for every such task it cancels at stop, and a stop is routine (_stop_background).
    loop = asyncio.get_running_loop()
    app.ctx.background = [loop.create_task(app.ctx.keys.record_use_forever(), name="api-key-use")]
    app.ctx.background.append(
        loop.create_task(app.ctx.limiter.reconcile_forever(), name="rate-limit-reconcile")
    )
    if settings.rollup_refresh_seconds:
        refresh = refresh_rollups_forever(app.ctx.store, settings.rollup_refresh_seconds)
        app.ctx.background.append(loop.create_task(refresh, name="rollup-refresh"))
    # Retention: every worker tries each round; the advisory lock lets one of them prune.
    app.ctx.pruner = Pruner(
        settings.database_url,
        settings.db_timeout_seconds,
        settings.retention_days,
        settings.rollup_retention_days,
    )
    if settings.retention_interval_seconds:
        prune = prune_forever(app.ctx.pruner, settings.retention_interval_seconds)
        app.ctx.background.append(loop.create_task(prune, name="retention"))


async def _note_stop_requested(app: Sanic) -> None:
    app.ctx.stop_requested_at = time.monotonic()
    await _stop_background(app)


async def _stop_background(app: Sanic) -> None:
    """Neither loop need finish: cancelling a rollup refresh cancels its statement in
    PostgreSQL, and the drain records the last key use itself."""
    tasks: list[asyncio.Task[None]] = app.ctx.background
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _drain_and_close(app: Sanic) -> None:
    """After Sanic stopped accepting and waited for in-flight requests: commit whatever is
    still queued, in what is left of GRACEFUL_SHUTDOWN_TIMEOUT, then let go."""
    spent = time.monotonic() - getattr(app.ctx, "stop_requested_at", time.monotonic())
    budget = max(1.0, app.ctx.settings.graceful_shutdown_seconds - spent)
    await app.ctx.writer.close(timeout=budget)
    # The last minute's key use; bounded, as a frozen database must not hold up the stop.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(app.ctx.keys.record_use(), timeout=1)
    app.ctx.key_store.close()
    app.ctx.limiter.close()
    app.ctx.pruner.close()
    app.ctx.store.close()
    metrics.forget_process(os.getpid())
