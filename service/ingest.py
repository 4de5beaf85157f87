"""The ingest pipeline's named stages: read the body, validate, normalise."""

from __future__ import annotations

import json
from typing import Any

from sanic import Request

from service.body import JsonBody, decode_body, parse_json
from service.errors import InvalidSchema, PayloadTooLarge
from service.session_row import SessionRow, to_row
from service.summary import validate_summary


def read_json_body(request: Request, limit: int) -> JsonBody:
    raw = decode_body(request.body, request.headers.get("content-encoding"), limit)
    return parse_json(raw)


def session_row(body: JsonBody) -> SessionRow:
    """Validate one summary and normalise it into its row (raises InvalidSchema)."""
    return _validated_row(body, body.value, body.text)


def batch_items(body: JsonBody, max_items: int) -> list[Any]:
    if not isinstance(body.value, list):
        raise InvalidSchema(
            "body: must be a JSON array of session summaries",
            [{"field": "body", "message": "must be a JSON array of session summaries"}],
        )
    if len(body.value) > max_items:
        raise PayloadTooLarge(f"body: at most {max_items} sessions per batch")
    return body.value


def batch_item_row(body: JsonBody, index: int, item: Any) -> SessionRow:
    """One element of a batch: the same checks as a single session, fields named `[i].x`."""
    # The element's own text for its payload column; json.dumps keeps every key and value.
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    return _validated_row(body, item, text, path=f"[{index}]")


def _validated_row(body: JsonBody, value: Any, payload_text: str, path: str = "") -> SessionRow:
    body.ensure_storable(value, path)
    summary = validate_summary(value, field_prefix=f"{path}." if path else "")
    return to_row(summary, payload_text)
