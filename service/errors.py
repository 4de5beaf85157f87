"""One error family and one JSON shape for every error the API returns.

Every error body is `{"error": {"code", "message", "timestamp"[, "details"]}}`, the shape the
Kotlin backend used and the SDK logs; the HTTP status lives on the exception class.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from sanic import HTTPResponse, Request, json
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.log import logger

# Sanic's own exceptions (routing, body size, ...) by status, in our vocabulary.
_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "INVALID_API_KEY",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidApiKey(ApiError):
    status = 401
    code = "INVALID_API_KEY"


class InvalidSchema(ApiError):
    """The request is unusable as sent; `details` lists every field at fault."""

    status = 400
    code = "INVALID_SCHEMA"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class DatabaseUnavailable(ApiError):
    """PostgreSQL did not answer in time; the client should retry (idempotent by sessionId)."""

    status = 503
    code = "DATABASE_ERROR"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


class QueueFull(ApiError):
    """Backpressure: this worker already holds as many rows as it may wait to commit."""

    status = 503
    code = "QUEUE_FULL"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class RateLimited(ApiError):
    """The API key used up its requests of the current window (service/rate_limit.py);
    `headers` say when to come back (Retry-After) and the X-RateLimit-* state."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers  # type: ignore[misc]  # this refusal's own, not the class's


class ShuttingDown(ApiError):
    status = 503
    code = "SHUTTING_DOWN"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HTTPResponse:
    """The one error body; `extra` adds endpoint-specific keys (the batch's results)."""
    error: dict[str, Any] = {"code": code, "message": message, "timestamp": int(time.time() * 1000)}
    if details:
        error["details"] = details
    error.update(extra)
    return json({"error": error}, status=status, headers=headers)


class JsonErrorHandler(ErrorHandler):
    """Turns every exception, ours or Sanic's, into the one error shape."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, asyncio.CancelledError):
            # Sanic's RequestCancelled: the client hung up before its answer. Nobody reads
            # this response, and a phone losing its network is no server error: one line,
            # no traceback (a load test's end would otherwise log thousands of them).
            logger.info(
                "client closed the connection before the answer: %s %s",
                request.method,
                request.path,
            )
            return error_response(503, "SERVICE_UNAVAILABLE", "request cancelled by the client")
        if isinstance(exception, ApiError):
            return error_response(
                exception.status,
                exception.code,
                exception.message,
                exception.details,
                exception.headers,
            )
        if isinstance(exception, SanicException):
            status = exception.status_code
            code = _CODES_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "ERROR")
            message = str(exception) if status < 500 else "internal error"
            return error_response(status, code, message, headers=dict(exception.headers or {}))
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "INTERNAL_ERROR", "internal error")
