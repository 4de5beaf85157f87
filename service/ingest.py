"""The ingest pipeline's named stages: read the body, validate, normalise."""

from __future__ import annotations

from sanic import Request

from service.body import JsonBody, decode_body, parse_json
from service.session_row import SessionRow, to_row
from service.summary import validate_summary


def read_json_body(request: Request, limit: int) -> JsonBody:
    raw = decode_body(request.body, request.headers.get("content-encoding"), limit)
    return parse_json(raw)


def session_row(body: JsonBody) -> SessionRow:
    """Validate one summary and normalise it into its row (raises InvalidSchema)."""
    return to_row(validate_summary(body.value), body.text)
