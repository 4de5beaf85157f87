"""API keys and tenants: what a key looks like, how it is stored, what a slug may be.

A key is `m3w_` and 32 random bytes in URL-safe base64 (43 characters): the prefix lets
people and secret scanners recognise a leaked one. The database keeps only its SHA-256 and
a short display prefix; the key itself is shown once, by `m3w keys create`. A fast hash is
the right one for 256-bit random tokens (a slow KDF protects guessable passwords, and would
make every uncached lookup cost milliseconds).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "m3w_"
KEY_RANDOM_BYTES = 32
# What `m3w keys list` shows of a key: the prefix and 6 characters (36 of its 256 bits).
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6
# Keys made here are 43 characters after the prefix; longer ones are allowed for later.
_KEY_SHAPE = re.compile(rb"m3w_[A-Za-z0-9_-]{43,200}")
SLUG_PATTERN = "[a-z0-9-]{1,40}"  # the same CHECK is on tenants.slug
_SLUG = re.compile(SLUG_PATTERN)
DEFAULT_TENANT = "default"  # owns the sessions of M3W_API_KEY, dev-key and older versions


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str


@dataclass(frozen=True)
class Caller:
    """Who sent a request: their tenant, and the stored key they used (None for
    M3W_API_KEY and dev-key, which have no row) with its own rate limit (None: the global
    RATE_LIMIT_REQUESTS; 0: unlimited; service/rate_limit.py)."""

    tenant: Tenant
    key_id: int | None = None
    rate_limit: int | None = None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def key_hash(key: bytes) -> bytes:
    """What api_keys.key_hash holds for this key."""
    return hashlib.sha256(key).digest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def could_be_stored_key(sent: bytes) -> bool:
    """Whether `sent` has the shape of a key `m3w keys create` makes: anything else cannot be
    in api_keys, so it is refused without asking PostgreSQL."""
    return _KEY_SHAPE.fullmatch(sent) is not None


def valid_slug(slug: str) -> bool:
    return _SLUG.fullmatch(slug) is not None
