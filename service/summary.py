"""What a session summary must look like to be stored: the request model.

Both payload shapes of the SDK contract (docs: ../shared/reference/sdk-contract.md) pass
through one model. We refuse only what is unusable: no id, not an object, wrong JSON types,
values out of range. Whatever we merely cannot interpret (an unknown key, a stream type we
have never seen, a start date of "null") is kept in the raw payload with its column NULL,
because a refused session is lost for good: the SDK does not retry.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from service.errors import InvalidSchema

INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1
DOUBLE_MAX = 1.7976931348623157e308
# A summary dated further ahead than this is refused: the stale-retry guard keeps the newest
# timestamp, so one phone with its clock in 2099 would freeze its session for good (and put
# it outside every dashboard). A day covers every time zone and clock drift.
MAX_FUTURE_MS = 24 * 3600 * 1000
SESSION_ID_MAX_CHARS = 128
# A whole-number sessionId becomes its decimal string, which must fit SESSION_ID_MAX_CHARS.
SESSION_ID_INT_MAX = 10**SESSION_ID_MAX_CHARS - 1
SESSION_ID_INT_MIN = -(10 ** (SESSION_ID_MAX_CHARS - 1) - 1)
# jsonb refuses U+0000 in any string (unpaired surrogates cannot be valid JSON text).
NO_NUL_PATTERN = "^[^\\u0000]*$"
# Media3 reports "unknown" as -1 (C.LENGTH_UNSET / C.INDEX_UNSET): stored as NULL.
UNKNOWN_SENTINEL = -1


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _whole_number(value: Any) -> int:
    # bool is an int in Python but `true` is no number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("wrong_type", "must be a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise _fail("wrong_type", "must be a whole number")
        value = int(value)
    return value


def _metric(maximum: int) -> Any:
    """A non-negative whole-number metric; null and Media3's -1 mean unknown."""

    def check(value: Any) -> int | None:
        if value is None:
            return None
        number = _whole_number(value)
        if number == UNKNOWN_SENTINEL:
            return None
        if number < 0:
            raise _fail("out_of_range", "must not be negative (-1 means unknown)")
        if number > maximum:
            raise _fail("out_of_range", f"must be at most {maximum}")
        return number

    # -1 is the only negative accepted (Media3's "unknown", stored as NULL).
    schema = {"anyOf": [{"type": "integer", "minimum": -1, "maximum": maximum}, {"type": "null"}]}
    return Annotated[int | None, PlainValidator(check), WithJsonSchema(schema)]


def _check_ratio(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("wrong_type", "must be a number")
    if value == UNKNOWN_SENTINEL:
        return None
    if value < 0:
        raise _fail("out_of_range", "must not be negative (-1 means unknown)")
    try:
        return float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        raise _fail("out_of_range", "is too large") from None


def _check_rate(value: Any) -> float | None:
    """A non-negative number that may have a fraction (an average); -1 means unknown."""
    rate = _check_ratio(value)
    if rate is None:
        return None
    # Compared and kept as sent: a whole number past 2**53 is not exactly a float, and
    # x 1000 must still fit the bigint column (session_row.py).
    if value > KBPS_MAX:
        raise _fail("out_of_range", f"must be at most {KBPS_MAX}")
    return value if isinstance(value, int) else rate


def _check_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _fail("wrong_type", "must be a string")


def _check_session_id(value: Any) -> str:
    # Older SDK builds sent a number (e.g. 5): keep it as its decimal string.
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 5.0 is the JSON number 5
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _fail("wrong_type", "must be a string (or a whole number)")
    if not value.strip():
        raise _fail("blank", "must not be blank")
    if len(value) > SESSION_ID_MAX_CHARS:
        raise _fail("too_long", f"must be at most {SESSION_ID_MAX_CHARS} characters")
    return value


def _check_epoch_ms(value: Any) -> int:
    number = _whole_number(value)
    if number <= 0:
        raise _fail("out_of_range", "must be a positive epoch time in milliseconds")
    if number > time.time() * 1000 + MAX_FUTURE_MS:
        raise _fail("out_of_range", "must not be more than 24 hours ahead of the server's clock")
    return number


def _check_labels(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("wrong_type", "must be an object of string values")
    for key, label in value.items():
        if not isinstance(label, str):
            raise _fail("wrong_type", f"value of {key!r} must be a string")
    return value


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


# The JSON schemas below are what the OpenAPI document says (service/openapi_doc.py): each
# states exactly what its validator accepts.
_UNKNOWN_OR_NULL = [{"const": UNKNOWN_SENTINEL}, {"type": "null"}]


def _number_or_unknown(maximum: float) -> dict[str, Any]:
    return {"anyOf": [{"type": "number", "minimum": 0, "maximum": maximum}, *_UNKNOWN_OR_NULL]}


KBPS_MAX = INT8_MAX // 1000  # kbps x 1000 is stored in a bigint (bits per second)
Kbps = Annotated[
    float | None,
    PlainValidator(_check_rate),
    WithJsonSchema(_number_or_unknown(KBPS_MAX)),
]
Text = Annotated[
    str | None,
    PlainValidator(_check_text),
    WithJsonSchema(_nullable({"type": "string", "pattern": NO_NUL_PATTERN})),
]
Ratio = Annotated[
    float | None,
    PlainValidator(_check_ratio),
    WithJsonSchema(_number_or_unknown(DOUBLE_MAX)),
]
SessionId = Annotated[
    str,
    PlainValidator(_check_session_id),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": SESSION_ID_MAX_CHARS,
                    # not blank; no NUL
                    "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
                },
                {"type": "integer", "minimum": SESSION_ID_INT_MIN, "maximum": SESSION_ID_INT_MAX},
            ]
        }
    ),
]
EpochMs = Annotated[
    int,
    PlainValidator(_check_epoch_ms),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "description": "Epoch milliseconds; at most 24 hours ahead of the server's clock.",
        }
    ),
]
Labels = Annotated[
    dict[str, str] | None,
    PlainValidator(_check_labels),
    WithJsonSchema(
        _nullable(
            {
                "type": "object",
                "propertyNames": {"pattern": NO_NUL_PATTERN},
                "additionalProperties": {"type": "string", "pattern": NO_NUL_PATTERN},
            }
        )
    ),
]
Millis = _metric(INT8_MAX)
Count = _metric(INT4_MAX)


class _Open(BaseModel):
    # Unknown keys are allowed (and kept: the raw payload is stored as received).
    model_config = ConfigDict(extra="ignore", strict=True)


class Device(_Open):
    model: Text = None
    os: Text = None
    osVersion: Text = None


class App(_Open):
    name: Text = None
    version: Text = None


class SessionSummary(_Open):
    """One playback session as the Android SDK sends it (payload A or schema 1.x)."""

    sessionId: SessionId
    timestamp: EpochMs
    schemaVersion: Text = None
    sessionStartDateIso: Text = None
    sessionDurationMs: Millis = None
    startupTimeMs: Millis = None
    rebufferTimeMs: Millis = None
    rebufferCount: Count = None
    playTimeMs: Millis = None
    rebufferRatio: Ratio = None
    totalDroppedFrames: Millis = None
    droppedFrames: Millis = None
    totalSeekCount: Count = None
    totalSeekTimeMs: Millis = None
    meanVideoFormatBitrate: Millis = None
    avgBitrateKbps: Kbps = None
    errorCount: Count = None
    lastErrorCode: Count = None
    lastErrorCategory: Text = None
    qualitySwitchCount: Count = None
    contentId: Text = None
    streamType: Text = None
    device: Device | None = None
    app: App | None = None
    custom: Labels = None


_MESSAGES_BY_ERROR_TYPE = {
    "missing": "is required",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


def validate_summary(value: Any, field_prefix: str = "") -> SessionSummary:
    """The validated summary, or InvalidSchema listing every field at fault."""
    if not isinstance(value, dict):
        field = field_prefix.rstrip(".") or "body"
        raise InvalidSchema(
            f"{field}: must be a JSON object", [_detail(field, "must be a JSON object")]
        )
    try:
        return SessionSummary.model_validate(value)
    except ValidationError as err:
        details = [
            _detail(
                field_prefix + ".".join(str(part) for part in error["loc"]),
                _MESSAGES_BY_ERROR_TYPE.get(error["type"], error["msg"]),
            )
            for error in err.errors(include_url=False)
        ]
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise InvalidSchema(f"{first['field']}: {first['message']}{more}", details) from None


def _detail(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}
