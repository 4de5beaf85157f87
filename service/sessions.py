"""The session endpoints: each handler is read -> validate/normalise -> store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import Blueprint, HTTPResponse, Request, json
from sanic_ext import openapi

from service import metrics
from service.auth import require_api_key
from service.batch import BatchResults
from service.errors import ApiError, error_response
from service.ingest import batch_item_row, batch_items, read_json_body, session_row
from service.summary import SessionSummary

bp = Blueprint("sessions", url_prefix="/v1/sessions")

SUMMARY_BODY = {"application/json": openapi.definitions.Component(SessionSummary)}
BATCH_BODY = {"application/json": {"type": "array", "items": SUMMARY_BODY["application/json"]}}


def counts_rejections(
    handler: Callable[..., Awaitable[HTTPResponse]],
) -> Callable[..., Awaitable[HTTPResponse]]:
    """Count every session refused, by reason (the error code), in sessions_rejected_total."""

    @wraps(handler)
    async def counted(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        try:
            return await handler(request, *args, **kwargs)
        except ApiError as err:
            metrics.SESSIONS_REJECTED.labels(err.code.lower()).inc()
            raise

    return counted


@bp.post("")
@openapi.definition(
    summary="Store one playback session summary",
    description="Idempotent by sessionId: a repeat updates the row unless it is older than "
    "the stored one. Answers 200 only after the row is committed.",
    body=SUMMARY_BODY,
    secured="ApiKeyAuth",
    tag="sessions",
)
@counts_rejections
@require_api_key
async def ingest_session(request: Request) -> HTTPResponse:
    row = session_row(read_json_body(request, request.app.ctx.settings.max_body_bytes))
    await request.app.ctx.writer.write(row)
    return json({"status": "success", "sessionId": row.session_id})


@bp.post("/validate")
@openapi.definition(
    summary="Check a session summary without storing it",
    description="Exactly the validation, limits and answers of POST /v1/sessions; "
    "nothing is written.",
    body=SUMMARY_BODY,
    secured="ApiKeyAuth",
    tag="sessions",
)
@require_api_key
async def validate_session(request: Request) -> HTTPResponse:
    row = session_row(read_json_body(request, request.app.ctx.settings.max_body_bytes))
    return json({"status": "valid", "sessionId": row.session_id})


@bp.post("/batch")
@openapi.definition(
    summary="Store up to M3W_BATCH_MAX_ITEMS session summaries in one commit",
    description="For the SDK's offline queue. Each item is validated alone; the valid ones "
    "are committed together. The response has one result per item, in order.",
    body=BATCH_BODY,
    secured="ApiKeyAuth",
    tag="sessions",
)
@counts_rejections
@require_api_key
async def ingest_batch(request: Request) -> HTTPResponse:
    settings = request.app.ctx.settings
    body = read_json_body(request, settings.batch_endpoint_max_bytes)
    items = batch_items(body, settings.batch_endpoint_max_items)

    results = BatchResults(items)
    valid_rows, valid_indexes = [], []
    for index, item in enumerate(items):
        try:
            valid_rows.append(batch_item_row(body, index, item))
            valid_indexes.append(index)
        except ApiError as err:
            results.refused(index, err)
            metrics.SESSIONS_REJECTED.labels(err.code.lower()).inc()

    outcomes = await request.app.ctx.writer.write_together(valid_rows) if valid_rows else []
    for index, error in zip(valid_indexes, outcomes, strict=True):
        if error is None:
            results.stored(index)
        else:
            results.refused(index, error)

    if results.retryable is not None:
        # Some valid sessions were not stored and should be sent again: not a 2xx.
        error = results.retryable
        return error_response(
            error.status, error.code, error.message, headers=error.headers, results=results.items
        )
    return json(results.body())
