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

    Surrounding whitespace is not part of the value (RFC 9110, section 5.5), and a key sent
    twice is refused rather than one of them picked. The comparison takes the same time
    whatever the sent key, so it cannot be guessed byte by byte; neither key is ever logged."""

    @wraps(handler)
    async def checked(request: Request, *args: object, **kwargs: object) -> HTTPResponse:
        sent = request.headers.getall("x-api-key", [])
        if len(sent) > 1:
            raise InvalidApiKey("X-API-Key was sent more than once; send it once")
        expected: bytes = request.app.ctx.api_key
        # Sanic keeps undecodable header bytes as surrogates: encode them back, never fail.
        given = sent[0].strip(" \t").encode("utf-8", "surrogateescape") if sent else None
        if given is None or not hmac.compare_digest(given, expected):
            raise InvalidApiKey("missing or invalid X-API-Key header")
        return await handler(request, *args, **kwargs)

    return checked
