"""POST /v1/sessions: validate -> normalise -> store."""

from sanic import Blueprint, HTTPResponse, Request, json
from sanic_ext import openapi

from service.auth import require_api_key
from service.ingest import read_json_body, session_row
from service.summary import SessionSummary

bp = Blueprint("sessions", url_prefix="/v1/sessions")


@bp.post("")
@openapi.definition(
    summary="Store one playback session summary",
    body={"application/json": openapi.definitions.Component(SessionSummary)},
    secured="ApiKeyAuth",
    tag="sessions",
)
@require_api_key
async def ingest_session(request: Request) -> HTTPResponse:
    """Idempotent by sessionId: a repeat updates the row unless it is older than the stored
    one. Answers 200 only after the row is committed."""
    row = session_row(read_json_body(request, request.app.ctx.settings.max_body_bytes))
    await request.app.ctx.writer.write(row)
    return json({"status": "success", "sessionId": row.session_id})
