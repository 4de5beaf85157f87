"""Turn a request body into JSON: content encoding, size limit, UTF-8, strict JSON.

What comes out is both the parsed value (for validation) and the decoded text (stored as
received in the `payload` column, so PostgreSQL parses it once and we never re-serialise it).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidSchema, PayloadTooLarge, UnsupportedMediaType

# PostgreSQL's jsonb cannot hold U+0000 nor an unpaired UTF-16 surrogate; both can only
# arrive as \u escapes, so this cheap test on the raw text spares the exact walk for
# almost every body.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class JsonBody:
    text: str
    value: Any
    # False when the raw text holds no \u0000 or surrogate escape: nothing to check.
    may_hold_unstorable: bool

    def ensure_storable(self, value: Any, path: str = "") -> None:
        """Raise InvalidSchema naming the first string PostgreSQL's jsonb would refuse."""
        if not self.may_hold_unstorable:
            return
        found = find_unstorable_string(value, path)
        if found is not None:
            message = "contains a NUL character or an unpaired surrogate, which cannot be stored"
            raise InvalidSchema(f"{found}: {message}", [{"field": found, "message": message}])


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, keeping the size limit on the decoded bytes too (a small gzip
    body can inflate to gigabytes)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        decoded = raw
    elif encoding in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            decoded = inflater.decompress(raw, limit + 1)
        except zlib.error as err:
            raise InvalidSchema(
                f"body: not valid gzip ({err})", _body_detail("not valid gzip")
            ) from None
        if not inflater.eof and len(decoded) <= limit:
            raise InvalidSchema("body: truncated gzip stream", _body_detail("truncated gzip"))
    else:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send identity or gzip"
        )
    if len(decoded) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes (after decoding)")
    return decoded


def parse_json(raw: bytes) -> JsonBody:
    try:
        text = raw.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise InvalidSchema("body: not valid UTF-8", _body_detail("not valid UTF-8")) from None
    except (ValueError, RecursionError) as err:
        raise InvalidSchema(
            f"body: malformed JSON ({err})", _body_detail(f"malformed JSON ({err})")
        ) from None
    return JsonBody(text, value, _SUSPECT_ESCAPE.search(raw) is not None)


def find_unstorable_string(value: Any, path: str = "") -> str | None:
    """The path of the first key or string PostgreSQL's jsonb would refuse, else None."""
    if isinstance(value, str):
        return path or "body" if _UNSTORABLE_CHAR.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if _UNSTORABLE_CHAR.search(key):
                return path or "body"
            found = find_unstorable_string(item, child)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unstorable_string(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number {text[:20]} is out of range")
    return number


def _body_detail(message: str) -> list[dict[str, str]]:
    return [{"field": "body", "message": message}]
