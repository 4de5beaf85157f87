"""Liveness and readiness, and the OpenAPI description."""

from __future__ import annotations


def test_liveness_answers_healthy(api):
    response = api.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_head_on_liveness_answers_like_get_without_a_body(api):
    get = api.get("/health")

    head = api.head("/health")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))


def test_readiness_answers_when_the_database_does(api):
    response = api.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_openapi_spec_describes_the_request_model_and_api_key(api):
    spec = api.get("/docs/openapi.json").json()

    operation = spec["paths"]["/v1/sessions"]["post"]
    assert operation["security"] == [{"ApiKeyAuth": []}]
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]
    assert model["required"] == ["sessionId", "timestamp"]
    assert {"startupTimeMs", "avgBitrateKbps", "device"} <= set(model["properties"])
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
    }
