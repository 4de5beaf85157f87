"""GET /docs/openapi.json (and a Redoc page at /docs): the API as the service enforces it.

The request schemas come from the pydantic models the service validates with
(service/summary.py), whose annotations state exactly what each validator accepts:
nullable fields, a sessionId that may be a whole number, the same minima and maxima. The
limits come from the running configuration, and the timestamp's maximum from the clock at
the moment the document is served (24 hours ahead of it).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from sanic import Blueprint, HTTPResponse, Request, html, json

from service.config import Settings
from service.summary import MAX_FUTURE_MS, NO_NUL_PATTERN, SessionSummary

bp = Blueprint("openapi_document")

TITLE = "Media3Watch Backend"
_REF = "#/components/schemas/{model}"
_REDOC = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Media3Watch Backend API</title></head>
<body><redoc spec-url="/docs/openapi.json"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>
"""


@bp.get("/docs/openapi.json")
async def openapi_json(request: Request) -> HTTPResponse:
    return json(served_document(request.app.ctx.openapi))


@bp.get("/docs")
async def docs_page(request: Request) -> HTTPResponse:
    return html(_REDOC)


def served_document(document: dict[str, Any]) -> dict[str, Any]:
    """The document with today's upper bound for `timestamp`."""
    served = copy.deepcopy(document)
    timestamp = served["components"]["schemas"]["SessionSummary"]["properties"]["timestamp"]
    timestamp["maximum"] = int(time.time() * 1000) + MAX_FUTURE_MS
    return served


def build_document(settings: Settings) -> dict[str, Any]:
    schemas = _summary_schemas()
    schemas.update(_response_schemas())
    summary_ref = {"$ref": _REF.format(model="SessionSummary")}
    body_limits = (
        f"At most {settings.max_body_bytes} bytes, as sent and after gzip decoding "
        "(`Content-Encoding: gzip` is accepted); JSON nested at most 64 levels deep."
    )
    session_body = {
        "required": True,
        "description": body_limits,
        "content": {"application/json": {"schema": summary_ref}},
    }
    batch_body = {
        "required": True,
        "description": (
            f"At most {settings.batch_endpoint_max_items} summaries and "
            f"{settings.batch_endpoint_max_bytes} bytes (as sent and after gzip decoding)."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": settings.batch_endpoint_max_items,
                    "items": summary_ref,
                }
            }
        },
    }
    ingest_errors = _errors(400, 401, 408, 413, 415, 429, 503)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "1.0.0",
            "description": "Ingestion of Media3Watch playback-quality session summaries.",
        },
        "paths": {
            "/v1/sessions": {
                "post": {
                    "operationId": "ingestSession",
                    "tags": ["sessions"],
                    "summary": "Store one playback session summary",
                    "description": "Idempotent by sessionId: a repeat updates the row unless it "
                    "is older than the stored one. Answers 200 only after the row is committed.",
                    "security": [{"ApiKeyAuth": []}],
                    "requestBody": session_body,
                    "responses": {
                        "200": _json_response("Stored", "Stored"),
                        **ingest_errors,
                    },
                }
            },
            "/v1/sessions/validate": {
                "post": {
                    "operationId": "validateSession",
                    "tags": ["sessions"],
                    "summary": "Check a session summary without storing it",
                    "description": "Exactly the validation, limits and answers of "
                    "POST /v1/sessions; nothing is written.",
                    "security": [{"ApiKeyAuth": []}],
                    "requestBody": session_body,
                    "responses": {
                        "200": _json_response("Valid", "Valid"),
                        # 503: an API key not cached and PostgreSQL unreachable to look it up.
                        **_errors(400, 401, 408, 413, 415, 429, 503),
                    },
                }
            },
            "/v1/sessions/batch": {
                "post": {
                    "operationId": "ingestBatch",
                    "tags": ["sessions"],
                    "summary": "Store up to M3W_BATCH_MAX_ITEMS session summaries in one commit",
                    "description": "For the SDK's offline queue. Each item is validated alone; "
                    "the valid ones are committed together. The response has one result per "
                    "item, in order.",
                    "security": [{"ApiKeyAuth": []}],
                    "requestBody": batch_body,
                    "responses": {
                        "200": _json_response("One result per item", "BatchResults"),
                        **ingest_errors,
                    },
                }
            },
            "/health": {
                "get": _probe("liveness", "The process answers (the database is not touched)"),
                "head": {
                    **_probe("livenessHead", "GET /health without a body"),
                    "responses": {"200": {"description": "Healthy (headers only)"}},
                },
            },
            "/health/ready": {
                "get": {
                    **_probe("readiness", "PostgreSQL answers a query"),
                    "responses": {
                        "200": _json_response("Ready", "Ready"),
                        **_errors(503),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "tags": ["observability"],
                    "summary": "Prometheus metrics of all workers",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKeyAuth": {"type": "apiKey", "name": "X-API-Key", "in": "header"}
            },
        },
    }


def _summary_schemas() -> dict[str, Any]:
    """SessionSummary and its nested models, from pydantic, plus what validation allows in
    keys it does not know: any JSON that jsonb can store (no NUL in strings or names)."""
    generated = SessionSummary.model_json_schema(mode="validation", ref_template=_REF)
    schemas: dict[str, Any] = generated.pop("$defs", {})
    schemas["SessionSummary"] = generated
    storable = {"$ref": _REF.format(model="StorableJson")}
    no_nul_names = {"pattern": NO_NUL_PATTERN}
    for name in ("SessionSummary", "Device", "App"):
        schemas[name]["additionalProperties"] = storable
        schemas[name]["propertyNames"] = no_nul_names
    schemas["StorableJson"] = {
        "anyOf": [
            {"type": "string", "pattern": NO_NUL_PATTERN},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": storable},
            {"type": "object", "propertyNames": no_nul_names, "additionalProperties": storable},
        ]
    }
    return schemas


def _response_schemas() -> dict[str, Any]:
    detail = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    }
    item_error = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": detail},
        },
    }
    result = {
        "type": "object",
        "required": ["index", "sessionId", "status"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "sessionId": {"type": ["string", "null"]},
            "status": {"enum": ["stored", "rejected", "failed"]},
            "error": item_error,
        },
    }
    return {
        "Stored": _status_body("success"),
        "Valid": _status_body("valid"),
        "Ready": _fixed_status("ready"),
        "Healthy": _fixed_status("healthy"),
        "BatchResults": {
            "type": "object",
            "required": ["status", "stored", "rejected", "failed", "results"],
            "properties": {
                "status": {"enum": ["success", "partial"]},
                "stored": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0},
                "results": {"type": "array", "items": result},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "timestamp"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "timestamp": {"type": "integer", "description": "epoch milliseconds"},
                        "details": {"type": "array", "items": detail},
                        "results": {"type": "array", "items": result},
                    },
                }
            },
        },
    }


def _status_body(status: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "sessionId"],
        "properties": {"status": {"const": status}, "sessionId": {"type": "string"}},
    }


def _fixed_status(status: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": status}},
    }


def _json_response(description: str, model: str) -> dict[str, Any]:
    schema = {"$ref": _REF.format(model=model)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_DESCRIPTIONS = {
    400: "Unusable request (INVALID_SCHEMA, BAD_REQUEST)",
    401: "Missing, wrong or repeated X-API-Key (INVALID_API_KEY)",
    408: "The request did not arrive in time (REQUEST_TIMEOUT)",
    413: "Body too large (PAYLOAD_TOO_LARGE)",
    415: "Unsupported Content-Encoding (UNSUPPORTED_MEDIA_TYPE)",
    429: "The API key used up its rate limit for this window (RATE_LIMITED), see Retry-After",
    503: "Try again later (DATABASE_ERROR, QUEUE_FULL, SHUTTING_DOWN), see Retry-After",
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer"}}


# On a 429; every other answer to a key with a limit carries the X-RateLimit-* ones too.
_RATE_LIMIT_HEADERS = {
    "Retry-After": _header("Whole seconds until the window ends"),
    "X-RateLimit-Limit": _header("Requests per window for this key"),
    "X-RateLimit-Remaining": _header("Requests left in this window"),
    "X-RateLimit-Reset": _header("When the window ends, in epoch seconds"),
}


def _errors(*statuses: int) -> dict[str, Any]:
    responses = {str(s): _json_response(_ERROR_DESCRIPTIONS[s], "Error") for s in statuses}
    if "429" in responses:
        responses["429"]["headers"] = _RATE_LIMIT_HEADERS
    return responses


def _probe(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "tags": ["health"],
        "summary": summary,
        "responses": {"200": _json_response("Healthy", "Healthy")},
    }
