"""API-key check for the ingest routes: who is calling (service/key_auth.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from sanic import HTTPResponse, Request

from service.errors import InvalidApiKey

Handler = Callable[..., Awaitable[HTTPResponse]]


def require_api_key(handler: Handler) -> Handler:
    """Answer 401 unless X-API-Key (any letter case) is a valid key; the handler finds the
    caller (their tenant) in `request.ctx.caller`.

    Surrounding whitespace is not part of the value (RFC 9110, section 5.5), and a key sent
    twice is refused rather than one of them picked. M3W_API_KEY is compared in constant
    time, stored keys by their SHA-256, so a key cannot be guessed byte by byte; no key is
    ever logged. 503 DATABASE_ERROR when an uncached key cannot be looked up."""

    @wraps(handler)
    async def checked(request: Request, *args: object, **kwargs: object) -> HTTPResponse:
        sent = request.headers.getall("x-api-key", [])
        if len(sent) > 1:
            raise InvalidApiKey("X-API-Key was sent more than once; send it once")
        # Sanic keeps undecodable header bytes as surrogates: encode them back, never fail.
        given = sent[0].strip(" \t").encode("utf-8", "surrogateescape") if sent else None
        if given is None:
            raise InvalidApiKey("missing or invalid X-API-Key header")
        request.ctx.caller = await request.app.ctx.keys.caller(given)
        return await handler(request, *args, **kwargs)

    return checked
