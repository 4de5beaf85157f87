"""Every error, whatever its status, has one shape: {"error": {"code", "message", "timestamp"}}."""

from __future__ import annotations

import asyncio
import time

import pytest
from sanic import Sanic

from service.app import create_app
from service.config import load_settings
from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a


def assert_error_shape(body: dict, code: str) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) - {"details"} == {"code", "message", "timestamp"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert abs(error["timestamp"] - time.time() * 1000) < 60_000


CASES = [
    ("unknown route", "GET", "/nope", {}, None, 404, "NOT_FOUND"),
    ("wrong method", "GET", "/v1/sessions", {}, None, 405, "METHOD_NOT_ALLOWED"),
    ("no api key", "POST", "/v1/sessions", {}, "{}", 401, "INVALID_API_KEY"),
    (
        "invalid body",
        "POST",
        "/v1/sessions",
        {"X-API-Key": TEST_API_KEY},
        "[]",
        400,
        "INVALID_SCHEMA",
    ),
    (
        "too large",
        "POST",
        "/v1/sessions",
        {"X-API-Key": TEST_API_KEY},
        "x" * 70_000,
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    (
        "unsupported encoding",
        "POST",
        "/v1/sessions",
        {"X-API-Key": TEST_API_KEY, "Content-Encoding": "deflate"},
        "{}",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "key sent twice",
        "POST",
        "/v1/sessions",
        [("X-API-Key", "k")] * 2,
        "{}",
        401,
        "INVALID_API_KEY",
    ),
    ("URL too long", "GET", "/health?" + "a" * 10_000, {}, None, 414, "URI_TOO_LONG"),
    ("head too large", "GET", "/health", {"X-Big": "b" * 20_000}, None, 431, "HEADERS_TOO_LARGE"),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "status", "code"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_error_statuses_share_one_shape(server, db, method, path, headers, content, status, code):
    with server.client() as client:
        response = client.request(method, path, headers=headers, content=content)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert_error_shape(response.json(), code)
    assert db.count() == 0


def test_unexpected_exception_is_a_500_in_the_same_shape(database_url):
    Sanic.test_mode = True
    app = create_app(settings=load_settings(server_env(database_url)))

    @app.get("/boom")
    async def boom(request):
        raise RuntimeError("secret internals")

    _, response = asyncio.run(app.asgi_client.get("/boom"))

    assert response.status == 500
    assert_error_shape(response.json, "INTERNAL_ERROR")
    assert "secret" not in response.text


def test_valid_request_after_errors_still_works(api, db):
    assert api.post("/v1/sessions", content="{").status_code == 400
    assert api.post("/v1/sessions", json=payload_a()).status_code == 200
    assert db.count() == 1
