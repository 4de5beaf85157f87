"""`m3w tenants ...` and `m3w keys ...`: tenants and their API keys, managed from the shell.

They connect as the migrations do (M3W_MIGRATE_DATABASE_URL, else DATABASE_URL, else the
embedded PostgreSQL's owner role): the service's own role may read keys but never create or
revoke one. Exit codes: 0 done, 1 refused (bad slug, unknown tenant or key, duplicate slug),
2 the database or the configuration is at fault (as for every other `m3w` command).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pugsql
import sqlalchemy.exc
from sqlalchemy import create_engine

from service.config import DatabaseUrl
from service.keys import (
    SLUG_PATTERN,
    display_prefix,
    key_hash,
    new_key,
    valid_slug,
)
from service.store import QUERIES_DIR

COMMANDS = ("tenants", "keys")
MAX_NAME_LENGTH = 200  # the same CHECK is on tenants.name and api_keys.name
MAX_EXPIRY_DAYS = 36_500
MAX_RATE_LIMIT = 1_000_000_000  # as RATE_LIMIT_REQUESTS


class AdminError(Exception):
    """The command was refused (exit code 1); the message says why and what to do."""


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tenants = commands.add_parser(
        "tenants", help="create and list tenants (one per app or build sharing this backend)"
    ).add_subparsers(dest="action", required=True)
    create = tenants.add_parser("create", help="create a tenant")
    create.add_argument("slug", help=f"its short name: {SLUG_PATTERN}")
    create.add_argument("--name", help="display name (default: the slug)")
    create.add_argument(
        "--retention-days",
        type=_retention_days,
        metavar="N",
        help="prune its sessions N days after they ended (0: never; default: RETENTION_DAYS)",
    )
    update = tenants.add_parser("update", help="change a tenant's settings")
    update.add_argument("slug", help="the tenant")
    update.add_argument(
        "--retention-days",
        type=_retention_days,
        metavar="N",
        required=True,
        help="prune its sessions N days after they ended; 0: never; `default`: RETENTION_DAYS",
    )
    tenants.add_parser("list", help="list tenants")
    grant = tenants.add_parser(
        "grant-read",
        help="create or reset the read-only PostgreSQL role m3w_read_<slug>, which sees only "
        "this tenant's rows (a Grafana org's datasource); prints its new password once",
    )
    grant.add_argument("slug", help="the tenant")

    keys = commands.add_parser(
        "keys", help="create, list, update and revoke API keys"
    ).add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key: printed once, alone on stdout")
    create.add_argument("--tenant", required=True, help="slug of the tenant the key writes as")
    create.add_argument("--name", default="", help="what the key is for (e.g. the app)")
    create.add_argument(
        "--expires-in", type=_days, metavar="DAYS", help="expire after DAYS days (default: never)"
    )
    create.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="N",
        help="at most N requests per RATE_LIMIT_WINDOW_SEC, every instance together "
        "(0: unlimited; default: RATE_LIMIT_REQUESTS)",
    )
    update = keys.add_parser("update", help="change a key's settings")
    update.add_argument("id", type=int, help="the key's id (`m3w keys list`)")
    update.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="N",
        required=True,
        help="at most N requests per RATE_LIMIT_WINDOW_SEC; 0: unlimited; `default`: "
        "RATE_LIMIT_REQUESTS (takes effect within M3W_KEY_CACHE_SECONDS)",
    )
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    revoke = keys.add_parser("revoke", help="revoke a key (refused within M3W_KEY_CACHE_SECONDS)")
    revoke.add_argument("id", type=int, help="the key's id (`m3w keys list`)")


def run(args: argparse.Namespace, url: DatabaseUrl, cache_seconds: int) -> int:
    """Run one command against the database at `url`; returns the exit code."""
    try:
        queries = _connect(url)
        try:
            action = _ACTIONS[(args.command, args.action)]
            action(queries, args, cache_seconds)
        finally:
            queries.engine.dispose()
    except AdminError as err:
        print(f"m3w: {err}", file=sys.stderr)
        return 1
    except sqlalchemy.exc.ProgrammingError as err:
        if "does not exist" in str(err.orig):
            print(
                f"m3w: the database at {url.redacted()} has no tenants yet: run `m3w migrate`",
                file=sys.stderr,
            )
        else:
            print(f"m3w: database error: {_first_line(err)}", file=sys.stderr)
        return 2
    except sqlalchemy.exc.OperationalError as err:
        print(
            f"m3w: cannot use the database at {url.redacted()}: {_first_line(err)}",
            file=sys.stderr,
        )
        return 2
    return 0


def _create_tenant(queries: Any, args: argparse.Namespace, _: int) -> None:
    if not valid_slug(args.slug):
        raise AdminError(
            f"bad tenant slug {args.slug!r}: use 1 to 40 lowercase letters, digits and hyphens"
        )
    name = _name(args.name if args.name is not None else args.slug, allow_empty=False)
    try:
        with queries.transaction():
            tenant = queries.create_tenant(slug=args.slug, name=name)
            if args.retention_days not in (None, "default"):
                queries.set_tenant_retention(slug=args.slug, retention_days=args.retention_days)
    except sqlalchemy.exc.IntegrityError:
        raise AdminError(f"tenant {args.slug!r} exists already (`m3w tenants list`)") from None
    print(f"Created tenant {tenant['slug']!r} ({tenant['name']}).")
    print(f"Give its apps a key: m3w keys create --tenant {tenant['slug']}")


def _list_tenants(queries: Any, args: argparse.Namespace, _: int) -> None:
    rows = [
        [
            t["slug"],
            t["name"],
            _when(t["created_at"]),
            str(t["active_keys"]),
            _retention(t["retention_days"]),
        ]
        for t in queries.list_tenants()
    ]
    _table(["SLUG", "NAME", "CREATED", "ACTIVE KEYS", "RETENTION"], rows)


def _update_tenant(queries: Any, args: argparse.Namespace, _: int) -> None:
    tenant = _tenant(queries, args.slug)
    days = None if args.retention_days == "default" else args.retention_days
    queries.set_tenant_retention(slug=tenant["slug"], retention_days=days)
    kept = "as RETENTION_DAYS says" if days is None else _retention(days)
    print(
        f"Tenant {tenant['slug']!r} now keeps its sessions {kept} "
        "(the next prune applies it; the hours it prunes stay on the dashboards)."
    )


def _retention(days: int | None) -> str:
    if days is None:
        return "RETENTION_DAYS"
    return "forever" if days == 0 else f"{days} days"


def _grant_read(queries: Any, args: argparse.Namespace, _: int) -> None:
    tenant = _tenant(queries, args.slug)
    password = secrets.token_urlsafe(32)
    try:
        role = queries.grant_tenant_read(
            slug=tenant["slug"], password_verifier=scram_verifier(password)
        )
    except sqlalchemy.exc.ProgrammingError as err:
        if "permission denied" in str(err.orig) or "CREATEROLE" in str(err.orig):
            raise AdminError(
                f"this database role may not create roles: {_first_line(err)}. Run the command "
                "with M3W_MIGRATE_DATABASE_URL (or DATABASE_URL) set to a role with CREATEROLE "
                "(docs/grafana.md)"
            ) from None
        raise
    print(password)  # alone on stdout, for scripts, like `m3w keys create`
    _tell(
        f"Role {role!r} can now log in with the password above (shown only this once; run the "
        "command again to reset it). It may only read, and sees only the rows of tenant "
        f"{tenant['slug']!r}: use it as the datasource of that tenant's Grafana org "
        "(docs/grafana.md)."
    )


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, RFC 7677), computed
    here so that the password itself never reaches the server or its statement log."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _create_key(queries: Any, args: argparse.Namespace, cache_seconds: int) -> None:
    name = _name(args.name, allow_empty=True)
    tenant = _tenant(queries, args.tenant)
    key = new_key()
    with queries.transaction():
        created = queries.create_api_key(
            tenant_id=tenant["id"],
            name=name,
            prefix=display_prefix(key),
            key_hash=key_hash(key.encode()),
            expires_in_days=args.expires_in,
        )
        if args.rate_limit not in (None, "default"):
            queries.set_api_key_rate_limit(id=created["id"], rate_limit=args.rate_limit)
    print(key)  # alone on stdout, for scripts: `KEY=$(m3w keys create --tenant x)`
    expires = f"expires {_when(created['expires_at'])}" if created["expires_at"] else "no expiry"
    _tell(
        f"Created key {created['id']} ({display_prefix(key)}..., {expires}) for tenant "
        f"{tenant['slug']!r}. Apps send it in the X-API-Key header.\n"
        "This is the only time the key is shown: it is stored only as its SHA-256 hash. "
        f"Revoke it with `m3w keys revoke {created['id']}`."
    )


def _list_keys(queries: Any, args: argparse.Namespace, _: int) -> None:
    if args.tenant is not None:
        _tenant(queries, args.tenant)  # an unknown tenant is an error, not an empty list
    limits = {k["id"]: k["rate_limit"] for k in queries.api_key_rate_limits()}
    keys = [
        {**k, "rate_limit": limits.get(k["id"])} for k in queries.list_api_keys(tenant=args.tenant)
    ]
    if args.json:
        fields = (
            "id", "tenant", "name", "prefix", "created_at", "last_used_at", "expires_at",
            "revoked_at", "state", "rate_limit",
        )  # fmt: skip
        print(json.dumps([{f: _json_value(k[f]) for f in fields} for k in keys], indent=2))
        return
    rows = [
        [
            str(k["id"]),
            k["tenant"],
            k["name"] or "-",
            k["prefix"] + "...",
            _when(k["created_at"]),
            _when(k["last_used_at"]),
            _when(k["expires_at"]),
            _limit_text(k["rate_limit"]),
            k["state"],
        ]
        for k in keys
    ]
    header = ["ID", "TENANT", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES"]
    _table([*header, "RATE LIMIT", "STATE"], rows)


def _update_key(queries: Any, args: argparse.Namespace, cache_seconds: int) -> None:
    limit = None if args.rate_limit == "default" else args.rate_limit
    updated = queries.set_api_key_rate_limit(id=args.id, rate_limit=limit)
    if updated is None:
        raise AdminError(f"no API key with id {args.id} (`m3w keys list` shows them)")
    print(
        f"Key {updated['id']} ({updated['prefix']}...) of tenant {updated['tenant']!r}: rate "
        f"limit {_limit_text(updated['rate_limit'])}. Every worker applies it within "
        f"{cache_seconds} s (M3W_KEY_CACHE_SECONDS)."
    )


def _limit_text(limit: int | None) -> str:
    """A key's own rate limit as `keys list` shows it."""
    if limit is None:
        return "default"  # RATE_LIMIT_REQUESTS of the service
    return "unlimited" if limit == 0 else f"{limit}/window"


def _revoke_key(queries: Any, args: argparse.Namespace, cache_seconds: int) -> None:
    revoked = queries.revoke_api_key(id=args.id)
    if revoked is None:
        raise AdminError(f"no API key with id {args.id} (`m3w keys list` shows them)")
    what = f"key {revoked['id']} ({revoked['prefix']}...) of tenant {revoked['tenant']!r}"
    if not revoked["revoked_now"]:
        print(f"The {what} was revoked already, {_when(revoked['revoked_at'])}.")
        return
    print(
        f"Revoked the {what}. Every worker refuses it within {cache_seconds} s "
        "(M3W_KEY_CACHE_SECONDS)."
    )


_ACTIONS: dict[tuple[str, str], Callable[[Any, argparse.Namespace, int], None]] = {
    ("tenants", "create"): _create_tenant,
    ("tenants", "list"): _list_tenants,
    ("tenants", "grant-read"): _grant_read,
    ("tenants", "update"): _update_tenant,
    ("keys", "create"): _create_key,
    ("keys", "list"): _list_keys,
    ("keys", "revoke"): _revoke_key,
    ("keys", "update"): _update_key,
}


def _connect(url: DatabaseUrl) -> Any:
    queries = pugsql.module(str(QUERIES_DIR))
    queries.setengine(
        create_engine(
            url.sqlalchemy,
            connect_args={"connect_timeout": 10, "application_name": "m3w-admin"},
        )
    )
    return queries


def _tenant(queries: Any, slug: str) -> dict[str, Any]:
    tenant = queries.tenant_by_slug(slug=slug) if valid_slug(slug) else None
    if tenant is None:
        raise AdminError(
            f"no tenant {slug!r}: create it with `m3w tenants create {slug}` "
            "(`m3w tenants list` shows them)"
        )
    return tenant


def _name(name: str, *, allow_empty: bool) -> str:
    name = name.strip()
    if not name and not allow_empty:
        raise AdminError("--name must not be blank")
    if len(name) > MAX_NAME_LENGTH:
        raise AdminError(f"--name is longer than {MAX_NAME_LENGTH} characters")
    return name


def _rate_limit(text: str) -> int | str:
    if text == "default":
        return text
    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of requests (or `default`)"
        ) from None
    if not 0 <= limit <= MAX_RATE_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 0 (unlimited) and {MAX_RATE_LIMIT}")
    return limit


def _days(text: str) -> int:
    return _whole_days(text, least=1)


def _retention_days(text: str) -> int | str:
    """N (0: forever), or `default` (RETENTION_DAYS) where the command allows it."""
    return text if text == "default" else _whole_days(text, least=0)


def _whole_days(text: str, least: int) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not least <= days <= MAX_EXPIRY_DAYS:
        raise argparse.ArgumentTypeError(f"must be between {least} and {MAX_EXPIRY_DAYS} days")
    return days


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _json_value(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _tell(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _first_line(err: sqlalchemy.exc.DBAPIError) -> str:
    return str(err.orig).strip().splitlines()[0] if err.orig else str(err)
