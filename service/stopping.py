"""A worker's graceful stop, as clients see it.

Sanic (25.12) stops accepting at SIGTERM/SIGINT and closes only the connections that are
idle at that moment: a busy keep-alive connection goes on getting 200s until the grace
period runs out, then is cut mid-request, and the writer's drain runs out of time. So from
the stop signal on, every response closes its connection (`Connection: close`) once it is
sent, and a request that arrives meanwhile is answered 503 SHUTTING_DOWN with Retry-After:
the client retries elsewhere, and the worker is left with nothing but its drain.
"""

from __future__ import annotations

import asyncio
import signal

from sanic import HTTPResponse, Request, Sanic

from service.errors import ShuttingDown


def is_stopping(app: Sanic) -> bool:
    return getattr(app.ctx, "stopping", False)


async def catch_stop_signals(app: Sanic) -> None:
    """after_server_start listener: note the stop before Sanic's own handler stops the loop
    (Sanic registers that handler just before this event, so this one replaces it)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stop, app)


def _stop(app: Sanic) -> None:
    app.ctx.stopping = True
    app.stop(terminate=False)


async def refuse_when_stopping(request: Request) -> None:
    """Request middleware: nothing new starts in a stopping worker."""
    if is_stopping(request.app):
        _close_after_response(request)
        raise ShuttingDown("server is shutting down; retry shortly")


async def close_when_stopping(request: Request, response: HTTPResponse) -> None:
    """Response middleware: the request in flight at the stop is the connection's last."""
    if is_stopping(request.app):
        _close_after_response(request)


def _close_after_response(request: Request) -> None:
    stream = request.stream
    if stream is not None and hasattr(stream, "keep_alive"):  # HTTP/1.1
        stream.keep_alive = False
