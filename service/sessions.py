"""The session endpoints: each handler is read -> validate/normalise -> store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import Blueprint, HTTPResponse, Request, json

from service import metrics
from service.auth import require_api_key
from service.batch import BatchResults
from service.batch import reason as rejection_reason
from service.config import Settings
from service.errors import ApiError, error_response
from service.ingest import (
    batch_item_row,
    batch_items,
    read_json_body,
    receives_body,
    session_row,
)
from service.rate_limit import limits_rate

bp = Blueprint("sessions", url_prefix="/v1/sessions")

# Routes take their body as a stream (stream=True) so that each one enforces its own size
# limit before buffering (service/ingest.py: receives_body). Their OpenAPI description is
# built from the same models in service/openapi_doc.py.


def _session_limit(settings: Settings) -> int:
    return settings.max_body_bytes


def _batch_limit(settings: Settings) -> int:
    return settings.batch_endpoint_max_bytes


def counts_rejections(
    handler: Callable[..., Awaitable[HTTPResponse]],
) -> Callable[..., Awaitable[HTTPResponse]]:
    """Count every session refused, by reason (the error code) and tenant, in
    sessions_rejected_total."""

    @wraps(handler)
    async def counted(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        try:
            return await handler(request, *args, **kwargs)
        except ApiError as err:
            metrics.SESSIONS_REJECTED.labels(err.code.lower(), _tenant_label(request)).inc()
            raise

    return counted


def _tenant_label(request: Request) -> str:
    # Empty until the API key named the tenant (a refused key, a body refused before it).
    caller = getattr(request.ctx, "caller", None)
    return caller.tenant.slug if caller is not None else ""


@bp.post("", stream=True)
@counts_rejections
@require_api_key
@limits_rate
@receives_body(_session_limit)
async def ingest_session(request: Request) -> HTTPResponse:
    row = session_row(read_json_body(request, request.app.ctx.settings.max_body_bytes))
    row = row.for_tenant(request.ctx.caller.tenant)
    await request.app.ctx.writer.write(row)
    return json({"status": "success", "sessionId": row.session_id})


@bp.post("/validate", stream=True)
@require_api_key
@limits_rate
@receives_body(_session_limit)
async def validate_session(request: Request) -> HTTPResponse:
    row = session_row(read_json_body(request, request.app.ctx.settings.max_body_bytes))
    return json({"status": "valid", "sessionId": row.session_id})


@bp.post("/batch", stream=True)
@counts_rejections
@require_api_key
@limits_rate
@receives_body(_batch_limit)
async def ingest_batch(request: Request) -> HTTPResponse:
    settings = request.app.ctx.settings
    body = read_json_body(request, settings.batch_endpoint_max_bytes)
    items = batch_items(body, settings.batch_endpoint_max_items)

    results = BatchResults(items)
    tenant = request.ctx.caller.tenant
    valid_rows, valid_indexes = [], []
    for index, item in enumerate(items):
        try:
            valid_rows.append(batch_item_row(body, index, item).for_tenant(tenant))
            valid_indexes.append(index)
        except ApiError as err:
            results.refused(index, err)
            metrics.SESSIONS_REJECTED.labels(rejection_reason(err), tenant.slug).inc()

    # Through the writer's queue, commit slots and answer deadline, as single sessions.
    outcomes = await request.app.ctx.writer.write_together(valid_rows) if valid_rows else []
    for index, error in zip(valid_indexes, outcomes, strict=True):
        if error is None:
            results.stored(index)
        else:
            # Every item not stored is a rejected session, whoever is at fault.
            results.refused(index, error)
            metrics.SESSIONS_REJECTED.labels(rejection_reason(error), tenant.slug).inc()

    if results.retryable is not None:
        # Some valid sessions were not stored and should be sent again: not a 2xx.
        error = results.retryable
        return error_response(
            error.status, error.code, error.message, headers=error.headers, results=results.items
        )
    return json(results.body())
