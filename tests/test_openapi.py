"""The served OpenAPI document describes the API as the service enforces it: generated from
the models the service validates with, and checked against the running service."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from service.summary import INT4_MAX, INT8_MAX, KBPS_MAX, SESSION_ID_MAX_CHARS, SessionSummary
from tests.conftest import TEST_API_KEY
from tests.payloads import SDK_HEADERS
from tests.test_sessions import ACCEPTED, REJECTED, payload_a

POSTS = ["/v1/sessions", "/v1/sessions/validate", "/v1/sessions/batch"]


@pytest.fixture(scope="module")
def spec(server) -> dict:
    with server.client() as client:
        return client.get("/docs/openapi.json").json()


def summary_validator(spec: dict) -> jsonschema_rs.Draft202012Validator:
    schema = {"$ref": "#/components/schemas/SessionSummary", "components": spec["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_spec_is_titled_and_every_body_is_required(spec):
    assert spec["info"]["title"] == "Media3Watch Backend"
    assert spec["openapi"].startswith("3.1")
    for path in POSTS:
        operation = spec["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        assert operation["security"] == [{"ApiKeyAuth": []}]
    batch = spec["paths"]["/v1/sessions/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["maxItems"] == 500


def test_summary_schema_is_the_validating_model(spec):
    served = spec["components"]["schemas"]
    generated = SessionSummary.model_json_schema(ref_template="#/components/schemas/{model}")

    for name, schema in [("SessionSummary", generated), *generated["$defs"].items()]:
        properties = served[name]["properties"]
        expected = {k: v for k, v in schema["properties"].items() if k != "timestamp"}
        assert {k: v for k, v in properties.items() if k != "timestamp"} == expected
        assert served[name].get("required", []) == schema.get("required", [])


def _accepts(spec: dict, field: str, value: object) -> bool:
    return summary_validator(spec).is_valid(payload_a(**{field: value}))


# (field, value, accepted by the service)
FIELD_CASES = [
    *[(f, None, True) for f in ("contentId", "streamType", "schemaVersion", "custom")],
    *[(f, None, True) for f in ("rebufferRatio", "avgBitrateKbps", "device", "app")],
    ("sessionId", 5, True),
    ("sessionId", 10**SESSION_ID_MAX_CHARS, False),
    ("sessionId", " ", False),
    ("rebufferCount", INT4_MAX, True),
    ("rebufferCount", INT4_MAX + 1, False),
    ("playTimeMs", INT8_MAX, True),
    ("playTimeMs", INT8_MAX + 1, False),
    ("avgBitrateKbps", KBPS_MAX, True),
    ("avgBitrateKbps", KBPS_MAX + 1, False),
    ("rebufferRatio", -1, True),
    ("rebufferRatio", -0.5, False),
    ("startupTimeMs", -1, True),
    ("startupTimeMs", -2, False),
    ("timestamp", 0, False),
]


@pytest.mark.parametrize(("field", "value", "accepted"), FIELD_CASES)
def test_spec_and_service_agree_on_each_field(spec, api, db, field, value, accepted):
    response = api.post(
        "/v1/sessions/validate",
        content=json.dumps(payload_a(**{field: value})),
        headers=SDK_HEADERS,
    )

    assert (response.status_code == 200) is accepted, response.text
    assert _accepts(spec, field, value) is accepted


@pytest.mark.parametrize(
    "body",
    [c[1] for c in REJECTED if isinstance(c[1], dict)] + [payload_a(**c[1]) for c in ACCEPTED],
    ids=[c[0] for c in REJECTED if isinstance(c[1], dict)] + [c[0] for c in ACCEPTED],
)
def test_spec_and_service_agree_on_the_session_tables(spec, api, body):
    response = api.post("/v1/sessions/validate", content=json.dumps(body), headers=SDK_HEADERS)

    assert summary_validator(spec).is_valid(body) is (response.status_code == 200)


def test_timestamp_maximum_is_a_day_past_the_server_clock(spec, api):
    maximum = spec["components"]["schemas"]["SessionSummary"]["properties"]["timestamp"]["maximum"]

    at_limit = api.post("/v1/sessions/validate", json=payload_a(timestamp=maximum - 60_000))
    past_limit = api.post("/v1/sessions/validate", json=payload_a(timestamp=maximum + 60_000))

    assert (at_limit.status_code, past_limit.status_code) == (200, 400)


CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


VALID, INVALID = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
RUNS = [
    ("/v1/sessions/validate", VALID),
    ("/v1/sessions/validate", INVALID),
    ("/v1/sessions", VALID),
    ("/v1/sessions", INVALID),
    ("/health", VALID),  # takes nothing that could be wrong
]


@pytest.mark.parametrize(("path", "mode"), RUNS, ids=[f"{p} {m.value}" for p, m in RUNS])
def test_service_conforms_to_its_spec(server, db, spec, path, mode):
    """schemathesis: requests generated from the served document (valid ones must be
    accepted, invalid ones refused), every answer checked against it. Bounded: a fixed
    number of examples, derandomised, no example database."""
    method = "GET" if path == "/health" else "POST"
    schema = schemathesis.openapi.from_dict(spec)
    operation = schema[path][method]
    checks = [
        *CONFORMANCE,
        positive_data_acceptance if mode is VALID else negative_data_rejection,
    ]

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def conforms(case):
        response = case.call(base_url=server.url, headers={"X-API-Key": TEST_API_KEY})
        case.validate_response(response, checks=checks)

    conforms()
