"""API-key check for the ingest routes."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps

from sanic import HTTPResponse, Request

from service.errors import InvalidApiKey

Handler = Callable[..., Awaitable[HTTPResponse]]


def require_api_key(handler: Handler) -> Handler:
    """Answer 401 unless X-API-Key (any letter case) equals the configured key.

    The comparison takes the same time whatever the sent key, so it cannot be guessed byte by
    byte; neither key is ever logged."""

    @wraps(handler)
    async def checked(request: Request, *args: object, **kwargs: object) -> HTTPResponse:
        sent = request.headers.get("x-api-key")
        expected: bytes = request.app.ctx.api_key
        if sent is None or not hmac.compare_digest(sent.encode(), expected):
            raise InvalidApiKey("missing or invalid X-API-Key header")
        return await handler(request, *args, **kwargs)

    return checked
