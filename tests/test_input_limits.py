"""Bounded work on every request, through real servers and raw sockets: per-route body limits
enforced before buffering, gzip read whole or refused, any nesting a 400, slow and broken
clients timed out with 408, oversize request lines and heads refused, connections capped."""

from __future__ import annotations

import gzip
import json
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import SDK_HEADERS, payload_a
from tests.rawhttp import (
    closed_by_server,
    connect,
    exchange,
    read_response,
    request_head,
    trickle_until_answered,
)
from tests.servers import RunningServer
from tests.signals import wait_until
from tests.test_error_shape import assert_error_shape

KEYED = {"X-API-Key": TEST_API_KEY, "Content-Type": "application/json"}


def port_of(server: RunningServer) -> int:
    return urlsplit(server.url).port


# --- body limits, per route, before the body is read --------------------------------------


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/validate"])
def test_content_length_over_the_route_limit_is_refused_before_the_body_is_sent(server, db, path):
    # 4 MiB fits the batch route, not these 64 KiB routes; no byte of the body is sent, so
    # only an answer given from Content-Length alone can arrive.
    head = request_head("POST", path, {**KEYED, "Content-Length": str(4 * 1024 * 1024)})

    response = exchange(port_of(server), head)

    assert response.status == 413
    assert_error_shape(response.json(), "PAYLOAD_TOO_LARGE")
    assert db.count() == 0


def test_chunked_body_is_refused_as_soon_as_it_passes_the_route_limit(server, db):
    chunk = b"x" * 8192
    with connect(port_of(server)) as sock:
        sock.sendall(
            request_head("POST", "/v1/sessions", {**KEYED, "Transfer-Encoding": "chunked"})
        )
        for _ in range(9):  # 72 KiB > 64 KiB, and never the last chunk
            sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))

        response = read_response(sock)

    assert response.status == 413
    assert_error_shape(response.json(), "PAYLOAD_TOO_LARGE")
    assert db.count() == 0


def test_batch_route_takes_a_body_larger_than_the_single_limit(api, db):
    items = [payload_a(padding="x" * 1000) for _ in range(100)]  # about 130 KiB
    content = json.dumps(items)
    assert len(content) > 64 * 1024

    response = api.post("/v1/sessions/batch", content=content, headers=SDK_HEADERS)

    assert response.status_code == 200, response.text
    assert db.count() == 100


# --- gzip ---------------------------------------------------------------------------------


def test_multi_member_gzip_body_is_decoded_whole(api, db):
    text = json.dumps(payload_a()).encode()
    content = gzip.compress(text[:40]) + gzip.compress(text[40:])

    response = api.post(
        "/v1/sessions", content=content, headers={**SDK_HEADERS, "Content-Encoding": "gzip"}
    )

    assert response.status_code == 200, response.text
    assert db.session(response.json()["sessionId"])["payload"] == json.loads(text)


GZIP_REFUSED = [
    ("garbage after the member", lambda text: gzip.compress(text) + b"garbage"),
    ("zeros after the member", lambda text: gzip.compress(text) + b"\0" * 8),
    ("truncated second member", lambda text: gzip.compress(text) + gzip.compress(b" ")[:12]),
    ("truncated member", lambda text: gzip.compress(text)[:-6]),
]


@pytest.mark.parametrize("encode", [c[1] for c in GZIP_REFUSED], ids=[c[0] for c in GZIP_REFUSED])
@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/validate", "/v1/sessions/batch"])
def test_gzip_with_anything_but_whole_members_is_refused(api, db, path, encode):
    body = [payload_a()] if path.endswith("batch") else payload_a()
    content = encode(json.dumps(body).encode())

    response = api.post(path, content=content, headers={**SDK_HEADERS, "Content-Encoding": "gzip"})

    assert response.status_code == 400, response.text
    assert_error_shape(response.json(), "INVALID_SCHEMA")
    assert response.json()["error"]["details"][0]["field"] == "body"
    assert db.count() == 0


# --- nesting ------------------------------------------------------------------------------


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        '{"sessionId":"s","timestamp":1,"x":' + _nested(900, '"\\u0000"') + "}",
        # Python 3.13 parses this depth, then the recursive walk over it ended in a 500.
        '{"sessionId":"s","timestamp":1,"x":' + _nested(2000, '"\\u0000"') + "}",
        '{"sessionId":"s","timestamp":1,"x":' + _nested(900) + "}",
        '{"sessionId":"s","timestamp":1,"device":{"k":' + _nested(500) + "}}",
        _nested(30_000),
        '{"a":' * 10_000 + "1" + "}" * 10_000,
    ],
    ids=[
        "NUL under 900 levels",
        "NUL under 2000 levels",
        "900 levels",
        "500 levels in a known object",
        "30k arrays",
        "10k objects",
    ],
)
@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/validate"])
def test_any_nesting_is_a_400_never_a_500(api, db, path, body):
    response = api.post(path, content=body, headers=SDK_HEADERS)

    assert response.status_code == 400, response.text
    assert_error_shape(response.json(), "INVALID_SCHEMA")
    assert db.count() == 0


def test_batch_nested_a_million_deep_is_a_400(api, db):
    response = api.post("/v1/sessions/batch", content=_nested(1_000_000), headers=SDK_HEADERS)

    assert response.status_code == 400, response.text
    assert_error_shape(response.json(), "INVALID_SCHEMA")
    assert db.count() == 0


def test_deep_batch_item_is_rejected_alone(api, db):
    good = payload_a()
    deep = '{"sessionId":"d","timestamp":1,"x":' + _nested(900) + "}"

    response = api.post(
        "/v1/sessions/batch", content=f"[{json.dumps(good)},{deep}]", headers=SDK_HEADERS
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored", "rejected"]
    assert results[1]["error"]["details"][0]["field"].startswith("[1].x[0]")
    assert [r["session_id"] for r in db.query("SELECT session_id FROM sessions")] == [
        good["sessionId"]
    ]


# --- slow and broken clients (a server with one-second deadlines) -------------------------


@pytest.fixture(scope="module")
def strict_server(database_url, tmp_path_factory):
    env = server_env(
        database_url,
        M3W_HEADER_TIMEOUT_SECONDS="1",
        M3W_BODY_TIMEOUT_SECONDS="2",
        M3W_KEEP_ALIVE_SECONDS="2",
    )
    with RunningServer(env, tmp_path_factory.mktemp("strict") / "server.log") as running:
        yield running


def test_head_sent_one_byte_at_a_time_gets_408(strict_server, db):
    head = request_head("POST", "/v1/sessions", {**KEYED, "X-Padding": "p" * 200})
    with connect(port_of(strict_server)) as sock:
        response = trickle_until_answered(sock, head)

    assert response.status == 408
    assert_error_shape(response.json(), "REQUEST_TIMEOUT")
    assert db.count() == 0


def test_body_sent_one_byte_at_a_time_gets_408(strict_server, db):
    body = json.dumps(payload_a()).encode()
    head = request_head("POST", "/v1/sessions", {**KEYED, "Content-Length": str(len(body))})
    with connect(port_of(strict_server)) as sock:
        sock.sendall(head)
        response = trickle_until_answered(sock, body)

    assert response.status == 408
    assert_error_shape(response.json(), "REQUEST_TIMEOUT")
    assert db.count() == 0


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/batch", "/health"])
def test_body_shorter_than_its_content_length_gets_408_not_503(strict_server, db, path):
    head = request_head("POST", path, {**KEYED, "Content-Length": "1000"})
    with connect(port_of(strict_server)) as sock:
        sock.sendall(head + b'{"sessionId":')
        response = read_response(sock)

    # /health takes no POST: 405 at once is the answer there, never a 5xx.
    assert response.status == (405 if path == "/health" else 408)
    assert response.status < 500
    assert db.count() == 0


@pytest.mark.parametrize(
    "line",
    [b"HELLO\r\n", b"GET /health\r\n", b"GET /health HTTP/1.1\n", b"GET  /health HTTP/1.1\r\n"],
    ids=["one word", "no version", "bare LF", "two spaces"],
)
def test_malformed_request_line_is_answered_400_without_waiting_for_more(strict_server, line):
    # Nothing follows the line: a server waiting for the rest of the head would answer 408.
    response = exchange(port_of(strict_server), line)

    assert response.status == 400
    assert_error_shape(response.json(), "BAD_REQUEST")


def test_idle_keep_alive_connection_is_closed(strict_server):
    with connect(port_of(strict_server)) as sock:
        sock.sendall(request_head("GET", "/health", {}))
        assert read_response(sock).status == 200

        assert closed_by_server(sock)


def test_connections_beyond_the_cap_get_503_and_the_rest_are_served(database_url, tmp_path):
    env = server_env(database_url, M3W_MAX_CONNECTIONS="3")
    with RunningServer(env, tmp_path / "server.log") as server:
        port = port_of(server)
        held = [connect(port) for _ in range(3)]
        try:
            for sock in held:  # each one served, and still open (keep-alive)
                sock.sendall(request_head("GET", "/health", {}))
                assert read_response(sock).status == 200

            with connect(port) as extra:
                refused = read_response(extra)
                assert closed_by_server(extra)

            assert refused.status == 503
            assert refused.headers["retry-after"] == "1"
            assert_error_shape(refused.json(), "SERVICE_UNAVAILABLE")
            for sock in held:  # the held ones still work
                sock.sendall(request_head("GET", "/health", {}))
                assert read_response(sock).status == 200
        finally:
            for sock in held:
                sock.close()


# --- request line and head sizes ----------------------------------------------------------


def test_oversize_url_gets_414(server):
    response = exchange(port_of(server), request_head("GET", "/health?" + "a" * 10_000, {}))

    assert response.status == 414
    assert_error_shape(response.json(), "URI_TOO_LONG")


def test_oversize_head_gets_431(server):
    response = exchange(port_of(server), request_head("GET", "/health", {"X-Big": "b" * 20_000}))

    assert response.status == 431
    assert_error_shape(response.json(), "HEADERS_TOO_LARGE")


def test_a_client_hanging_up_mid_body_is_one_log_line_not_a_traceback(strict_server, db):
    """A phone losing its network is routine: no "unhandled error", no traceback."""
    head = request_head("POST", "/v1/sessions", {**KEYED, "Content-Length": "1000"})
    with connect(port_of(strict_server)) as sock:
        sock.sendall(head + b'{"sessionId":')
        # Hang up once the handler is reading the body (it answers nothing before the rest).
    line = "client closed the connection before the answer: POST /v1/sessions"
    wait_until(lambda: line in strict_server.log(), "the hang-up to be logged")

    assert "Traceback" not in strict_server.log()
    assert "unhandled error" not in strict_server.log()
    assert db.count() == 0
