"""The ingest pipeline's named stages: receive the body, read it as JSON, validate, normalise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import HTTPResponse, Request

from service.body import JsonBody, decode_body, parse_json
from service.config import Settings
from service.errors import InvalidSchema, PayloadTooLarge
from service.session_row import SessionRow, to_row
from service.summary import validate_summary

Handler = Callable[..., Awaitable[HTTPResponse]]


def receives_body(limit: Callable[[Settings], int]) -> Callable[[Handler], Handler]:
    """For a route declared with `stream=True`: receive its body into `request.body`, at
    most `limit(settings)` bytes as sent.

    Sanic would otherwise buffer up to its app-wide cap (the largest route's, 4 MiB) before
    the route could check its own: a Content-Length over the limit is refused before a byte
    of the body is read, and a chunked body as soon as it passes the limit."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def with_body(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            request.body = await receive_capped(request, limit(request.app.ctx.settings))
            return await handler(request, *args, **kwargs)

        return with_body

    return decorate


async def receive_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:  # Sanic has checked it is a number
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    # A route not declared with stream=True has its body already (Sanic preloaded it).
    received = bytearray(request.body)
    while len(received) <= limit and (chunk := await request.stream.read()) is not None:
        received += chunk
    if len(received) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    return bytes(received)


def read_json_body(request: Request, limit: int) -> JsonBody:
    raw = decode_body(request.body, request.headers.get("content-encoding"), limit)
    return parse_json(raw)


def session_row(body: JsonBody) -> SessionRow:
    """Validate one summary and normalise it into its row (raises InvalidSchema)."""
    return _validated_row(body)


def batch_items(body: JsonBody, max_items: int) -> list[Any]:
    if body.items is None:
        raise InvalidSchema(
            "body: must be a JSON array of session summaries",
            [{"field": "body", "message": "must be a JSON array of session summaries"}],
        )
    if len(body.items) > max_items:
        raise PayloadTooLarge(f"body: at most {max_items} sessions per batch")
    return body.value


def batch_item_row(body: JsonBody, index: int, item: Any) -> SessionRow:
    """One element of a batch: the same checks as a single session, fields named `[i].x`,
    stored with the element's own text as sent."""
    assert body.items is not None and body.items[index].value is item
    return _validated_row(body.items[index], path=f"[{index}]")


def _validated_row(body: JsonBody, path: str = "") -> SessionRow:
    body.ensure_storable(path)
    summary = validate_summary(body.value, field_prefix=f"{path}." if path else "")
    return to_row(summary, body.text)
