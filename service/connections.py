"""HTTP/1.1 connections that slow or broken clients cannot hold on to.

Sanic 25.12 alone (sanic/server/protocols/http_protocol.py, sanic/http/http1.py):
- REQUEST_TIMEOUT counts from the last byte received, so a head sent one byte a second
  never times out;
- a body is read in the HANDLER stage, where only RESPONSE_TIMEOUT applies (again from the
  last byte) and ends in `503 Response Timeout`: a client's fault answered as ours;
- a request line the parser cannot use waits for a blank line that may never come;
- an oversize head is answered 413, and nothing caps the connections a worker holds.

Here a request's head must arrive within `header_timeout_seconds` of its first byte and
its body within `body_timeout_seconds` of the head, however it trickles in (408 in the one
error shape), a request line is checked as soon as it is complete (400 at once), an
oversize request line answers 414 and an oversize head 431, and a worker holding
`max_connections` answers a new connection 503 and closes it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from asyncio import Transport
from typing import Any

from sanic import Sanic
from sanic.exceptions import BadRequest, PayloadTooLarge, RequestTimeout, SanicException, URITooLong
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from service.config import Settings

# method SP request-target SP HTTP-version CRLF (RFC 9112, section 3)
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ \r\n]+ HTTP/[0-9]\.[0-9]\r\n")


class RequestHeaderFieldsTooLarge(SanicException):
    status_code = 431
    quiet = True


def configure(app: Sanic, settings: Settings) -> None:
    """Sanic's own timeouts, consistent with the deadlines enforced below."""
    app.config.REQUEST_TIMEOUT = settings.header_timeout_seconds
    app.config.KEEP_ALIVE_TIMEOUT = settings.keep_alive_seconds
    # Counted from the last byte: must outlast the body deadline, so that a stalled body is
    # a 408 (the client's fault), never a 503. A handler answers well within it anyway.
    app.config.RESPONSE_TIMEOUT = max(60, settings.body_timeout_seconds + 1)


class GuardedHttp(Http):
    """Sanic's HTTP/1.1 state machine, with the request line checked as soon as it is in."""

    async def http1_request_header(self) -> None:
        protocol: GuardedHttpProtocol = self.protocol
        protocol.head_started = time.monotonic()
        buffer = self.recv_buffer
        limit = self.HEADER_MAX_SIZE
        while (end := buffer.find(b"\n")) < 0 and len(buffer) <= limit:
            await self._receive_more()
        if end < 0 or end >= limit:
            raise URITooLong(f"request line is longer than {limit} bytes")
        if not _REQUEST_LINE.fullmatch(buffer, 0, end + 1):
            raise BadRequest("malformed request line")
        try:
            await super().http1_request_header()
        except PayloadTooLarge:  # Sanic's word for a head over REQUEST_MAX_HEADER_SIZE
            raise RequestHeaderFieldsTooLarge(
                f"request header fields are larger than {limit} bytes"
            ) from None
        protocol.body_started = time.monotonic()


class GuardedHttpProtocol(HttpProtocol):
    HTTP_CLASS = GuardedHttp
    __slots__ = (
        "body_started",
        "body_timeout",
        "head_started",
        "header_timeout",
        "max_connections",
        "refused",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.app.ctx.settings
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.max_connections = settings.max_connections
        self.head_started: float | None = None
        self.body_started: float | None = None
        self.refused = False

    def check_timeouts(self) -> None:
        http = self._http
        if self._task and http is not None:
            now = time.monotonic()
            if (
                http.stage is Stage.REQUEST
                and self.head_started is not None
                and now - self.head_started > self.header_timeout
            ):
                http.exception = RequestTimeout(
                    f"the request head did not arrive within {self.header_timeout} s"
                )
                return self._cancel()
            if (
                # Unset until the first request begins (hence getattr).
                getattr(http, "request_body", None)
                and self.body_started is not None
                and now - self.body_started > self.body_timeout
            ):
                if http.stage is Stage.HANDLER:  # else the answer is out: just close
                    http.exception = RequestTimeout(
                        f"the request body did not arrive within {self.body_timeout} s"
                    )
                return self._cancel()
        super().check_timeouts()  # keep-alive, response timeout, and the next check

    def _cancel(self) -> None:
        # Sanic's own way: the connection task answers http.exception, then closes.
        if sys.version_info < (3, 14):
            self._task.cancel("Cancel connection task with a timeout")
        else:
            self._task.cancel()

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.refused = True
            transport.write(_too_many_connections())
            transport.close()
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.refused:
            super().connection_lost(exc)


class GuardedSanic(Sanic):
    """Sanic serving with GuardedHttpProtocol, however it is started (the `sanic` CLI,
    `m3w serve`, app.run), unless a protocol is given explicitly."""

    def prepare(self, *args: Any, protocol: Any = None, **kwargs: Any) -> None:
        super().prepare(*args, protocol=protocol or GuardedHttpProtocol, **kwargs)


def _too_many_connections() -> bytes:
    # Written before any request is read, so the body is built here, in the one shape.
    body = json.dumps(
        {
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": "this worker holds too many connections; retry shortly",
                "timestamp": int(time.time() * 1000),
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body
