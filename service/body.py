"""Turn a request body into JSON: content encoding, size limit, UTF-8, strict JSON, and the
checks that make sure PostgreSQL takes whatever validation accepts.

What comes out is both the parsed value (for validation) and the decoded text (stored as
received in the `payload` column, so PostgreSQL parses it once and we never re-serialise it).
A JSON array keeps each element's own text too, found from the parser's positions, so a
batch item is stored exactly as sent (`12345678901234567890.123456789` stays intact).
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
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as the json module skips it
_GZIP_MAGIC = b"\x1f\x8b"

# Deeper nesting is refused: no SDK payload comes near it, and it keeps every walk over a
# body far from Python's recursion limit (a 500 otherwise).
MAX_DEPTH = 64
# jsonb stores numbers as `numeric`, which refuses more than 16383 digits after the point
# (counting those an exponent adds: 1e-100000) and exponents beyond +-(2**30 - 1); a float
# parser would silently turn such a number into 0.0.
NUMERIC_DSCALE_MAX = 16383
NUMERIC_EXPONENT_MAX = 2**30 - 1

_NUL_MESSAGE = "contains a NUL character or an unpaired surrogate, which cannot be stored"
_NUMBER_MESSAGE = (
    f"holds a number with more than {NUMERIC_DSCALE_MAX} decimal places, which cannot be stored"
)
_DEPTH_MESSAGE = f"is nested deeper than {MAX_DEPTH} levels"


class _Pairs(list):  # type: ignore[type-arg]
    """An object as every (key, value) pair sent, duplicates included (jsonb parses them all)."""


@dataclass(frozen=True)
class _UnstorableNumber:
    text: str


@dataclass(frozen=True)
class JsonBody:
    text: str
    value: Any
    # True when the text holds a \u0000 or surrogate escape, or a number numeric refuses:
    # then the exact walk re-reads every pair, including earlier values of duplicated keys.
    needs_exact_check: bool
    # For a JSON array: each element with its own text, in order.
    items: tuple[JsonBody, ...] | None = None

    def ensure_storable(self, path: str = "") -> None:
        """Raise InvalidSchema naming the first value PostgreSQL's jsonb would refuse, or a
        nesting deeper than MAX_DEPTH."""
        if not self.needs_exact_check and _too_few_containers_to_nest(self.text):
            return  # almost every body: nothing unstorable, nothing deep
        tree = _exact_tree(self.text) if self.needs_exact_check else self.value
        found = first_unstorable(tree, path)
        if found is not None:
            field, message = found
            raise InvalidSchema(f"{field}: {message}", [{"field": field, "message": message}])


def decode_body(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, keeping the size limit on the decoded bytes too (a small gzip
    body can inflate to gigabytes)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        decoded = raw
    elif encoding in ("gzip", "x-gzip"):
        decoded = _gunzip(raw, limit)
    else:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send identity or gzip"
        )
    if len(decoded) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes (after decoding)")
    return decoded


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip stream (RFC 1952 allows several, concatenated); anything after
    the last member that is not another member is refused rather than ignored."""
    decoded = bytearray()
    rest = raw
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            decoded += inflater.decompress(rest, limit + 1 - len(decoded))
        except zlib.error as err:
            raise InvalidSchema(
                f"body: not valid gzip ({err})", _body_detail("not valid gzip")
            ) from None
        if len(decoded) > limit:
            return bytes(decoded)  # the caller answers 413
        if not inflater.eof:
            raise InvalidSchema("body: truncated gzip stream", _body_detail("truncated gzip"))
        rest = inflater.unused_data
        if not rest:
            return bytes(decoded)
        if not rest.startswith(_GZIP_MAGIC):
            raise InvalidSchema(
                "body: unexpected bytes after the gzip stream",
                _body_detail("unexpected bytes after the gzip stream"),
            )


def parse_json(raw: bytes) -> JsonBody:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSchema("body: not valid UTF-8", _body_detail("not valid UTF-8")) from None
    numbers = _NumberCheck()
    try:
        start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
        if text.startswith("[", start):
            return _parse_array(text, start, numbers)
        value = json.loads(text, parse_constant=_reject_constant, parse_float=numbers)
    except (ValueError, RecursionError) as err:
        raise InvalidSchema(
            f"body: malformed JSON ({err})", _body_detail(f"malformed JSON ({err})")
        ) from None
    return JsonBody(text, value, numbers.found or _SUSPECT_ESCAPE.search(text) is not None)


def _parse_array(text: str, start: int, numbers: _NumberCheck) -> JsonBody:
    """A JSON array parsed element by element, keeping each element's own text (from the
    parser's positions, never re-serialised)."""
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=numbers)
    items: list[JsonBody] = []
    pos = _WHITESPACE.match(text, start + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            numbers.found = False
            value, end = decoder.raw_decode(text, pos)
            item_text = text[pos:end]
            exact = numbers.found or _SUSPECT_ESCAPE.search(item_text) is not None
            items.append(JsonBody(item_text, value, exact))
            pos = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    if _WHITESPACE.match(text, pos).end() != len(text):  # type: ignore[union-attr]
        raise json.JSONDecodeError("Extra data", text, pos)
    return JsonBody(
        text,
        [item.value for item in items],
        any(item.needs_exact_check for item in items),
        tuple(items),
    )


class _NumberCheck:
    """parse_float hook: a finite float, noting any number jsonb's numeric would refuse."""

    def __init__(self) -> None:
        self.found = False

    def __call__(self, text: str) -> float:
        number = float(text)
        if math.isinf(number):
            raise ValueError(f"number {text[:20]} is out of range")
        # Only an exponent or a very long fraction can exceed numeric's scale.
        if (len(text) > NUMERIC_DSCALE_MAX or "e" in text or "E" in text) and not (
            numeric_can_store(text)
        ):
            self.found = True
        return number


def numeric_can_store(text: str) -> bool:
    """Whether PostgreSQL's numeric (hence jsonb) accepts this JSON number."""
    mantissa, _, exponent_text = text.lower().partition("e")
    digits = exponent_text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 10:
        return False
    exponent = -int(digits) if exponent_text.startswith("-") else int(digits)
    if abs(exponent) > NUMERIC_EXPONENT_MAX:
        return False
    decimals = len(mantissa.partition(".")[2])
    return decimals - exponent <= NUMERIC_DSCALE_MAX


def _exact_tree(text: str) -> Any:
    """The body again, with every pair of every object and unstorable numbers marked."""

    def number(literal: str) -> Any:
        return float(literal) if numeric_can_store(literal) else _UnstorableNumber(literal)

    return json.loads(
        text, object_pairs_hook=_Pairs, parse_float=number, parse_constant=_reject_constant
    )


def first_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(field, message) for the first key, string or number PostgreSQL's jsonb would refuse,
    or the first container nested deeper than MAX_DEPTH; None when all is storable.

    Iterative on purpose: no recursion limit to run into, however deep the body."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        field = where or "body"
        if isinstance(node, str):
            if _UNSTORABLE_CHAR.search(node):
                return field, _NUL_MESSAGE
        elif isinstance(node, _UnstorableNumber):
            return field, _NUMBER_MESSAGE
        elif isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return field, _DEPTH_MESSAGE
            if isinstance(node, _Pairs | dict):
                pairs = node.items() if isinstance(node, dict) else node
                children = []
                for key, item in pairs:
                    if _UNSTORABLE_CHAR.search(key):
                        return field, _NUL_MESSAGE
                    children.append((item, f"{where}.{key}" if where else key, depth + 1))
            else:
                children = [(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)]
            stack.extend(reversed(children))  # document order: the first problem is named
    return None


def _too_few_containers_to_nest(text: str) -> bool:
    # Nesting deeper than MAX_DEPTH needs more than MAX_DEPTH opening brackets (brackets
    # inside strings count too, which only costs the walk).
    return text.count("[") + text.count("{") <= MAX_DEPTH


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _body_detail(message: str) -> list[dict[str, str]]:
    return [{"field": "body", "message": message}]
