"""HTTP/1.1 over a raw socket, for what an HTTP client library will not send: slow, broken,
oversize or half-finished requests."""

from __future__ import annotations

import json
import select
import socket
from dataclasses import dataclass
from typing import Any

# Generous bound for one answer: a test fails by this, it never waits on it to pass.
ANSWER_WITHIN = 20.0


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket) -> RawResponse:
    """One response; raises TimeoutError if none comes within ANSWER_WITHIN."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(int(status_line.split(" ")[1]), headers, body[:length])


def exchange(port: int, data: bytes) -> RawResponse:
    with connect(port) as sock:
        sock.sendall(data)
        return read_response(sock)


def trickle_until_answered(sock: socket.socket, data: bytes, pause: float = 0.2) -> RawResponse:
    """Send `data` one byte at a time, `pause` seconds apart, as a very slow link would,
    until the server answers (then read its answer). Fails if all was sent unanswered."""
    for byte in data:
        readable, _, _ = select.select([sock], [], [], pause)
        if readable:
            return read_response(sock)
        sock.sendall(bytes([byte]))
    raise AssertionError(f"no answer while trickling {len(data)} bytes")


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (within ANSWER_WITHIN), sending nothing."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def request_head(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]]) -> bytes:
    pairs = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in pairs)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
