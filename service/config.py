"""All configuration, read from the environment and checked once, at start-up.

Every setting the service has is here, with its default. A bad value stops start-up with a
message that names the variable to set, so a typo never surfaces as a 500 at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_API_KEY = "dev-key"


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which variable to fix."""


@dataclass(frozen=True)
class DatabaseUrl:
    """One PostgreSQL location, spelled for each tool that needs it."""

    user: str | None
    password: str | None
    host: str
    port: int
    database: str
    query: tuple[tuple[str, str], ...] = ()

    def _url(self, scheme: str, query: list[tuple[str, str]]) -> str:
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"{scheme}://{auth}{host}:{self.port}/{quote(self.database, safe='')}"
        return url + ("?" + urlencode(query) if query else "")

    @property
    def sqlalchemy(self) -> str:
        """For PugSQL (SQLAlchemy with the psycopg 3 driver)."""
        return self._url("postgresql+psycopg", list(self.query))

    @property
    def libpq(self) -> str:
        """For dbmate, psql and Grafana-style clients."""
        query = list(self.query)
        # dbmate's driver requires TLS unless told otherwise ("pq: SSL is not enabled on
        # the server"), while libpq and psycopg only prefer it; spell the libpq default out
        # so every tool behaves the same.
        if not any(key == "sslmode" for key, _ in query):
            query.append(("sslmode", "prefer"))
        return self._url("postgres", query)

    def redacted(self) -> str:
        """The URL with the password hidden, fit for logs."""
        hidden = DatabaseUrl(
            self.user,
            "***" if self.password else None,
            self.host,
            self.port,
            self.database,
            self.query,
        )
        return hidden._url("postgres", list(self.query))


@dataclass(frozen=True)
class Settings:
    api_key: str
    database_url: DatabaseUrl | None  # None: `m3w serve` runs an embedded PostgreSQL
    host: str
    port: int
    workers: int
    max_body_bytes: int
    db_pool_size: int
    db_timeout_seconds: float
    data_dir: Path
    embedded_db_port: int
    batch_max_rows: int  # group commit: rows per transaction (1 = one commit per session)
    # group commit: how long queued rows wait for the commit in flight to end before another
    # commit starts beside it (a lone request never waits: it commits at once)
    batch_window_ms: float
    queue_max_rows: int  # rows waiting for a commit, per worker, before answering 503
    batch_endpoint_max_items: int
    batch_endpoint_max_bytes: int
    graceful_shutdown_seconds: float
    rollup_refresh_seconds: int  # 0: no refresh from the service (an external job does it)
    # Slow or broken clients (service/connections.py): a request's head must arrive within
    # header_timeout of its first byte and its body within body_timeout of the head, however
    # slowly it trickles in; an idle keep-alive connection closes after keep_alive.
    header_timeout_seconds: int = 10
    body_timeout_seconds: int = 30
    keep_alive_seconds: int = 15
    max_connections: int = 1000  # per worker; beyond, a new connection gets 503 and is closed
    # The schema owner's credentials for `m3w migrate` and the migrations of `m3w serve`
    # (docs/deploy.md); None: DATABASE_URL migrates too.
    migrate_database_url: DatabaseUrl | None = None
    # How long a worker trusts what it learnt about an API key (service/key_auth.py): a
    # revoked or expired key is refused everywhere within this many seconds.
    key_cache_seconds: int = 30
    # Requests per window and API key across the whole deployment (service/rate_limit.py);
    # 0: no limit (the default: every phone of an app shares its key). A key's own
    # `--rate-limit` overrides it.
    rate_limit_requests: int = 0
    rate_limit_window_seconds: int = 60
    # Sessions whose ended_at is older than this many days are pruned (service/retention.py);
    # 0: kept forever. A tenant's own `--retention-days` overrides it.
    retention_days: int = 0
    retention_interval_seconds: int = 3600  # 0: the service never prunes (`m3w prune` does)
    rollup_retention_days: int = 0  # dashboard rollups outlive the sessions; 0: forever

    @property
    def uses_default_api_key(self) -> bool:
        return self.api_key == DEFAULT_API_KEY

    def exposes_default_key(self, host: str) -> bool:
        """Whether serving on `host` offers the well-known default key to other machines."""
        return self.uses_default_api_key and not _is_loopback(host)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ConfigError naming the variable at fault."""
    env = os.environ if env is None else env
    api_key = env.get("M3W_API_KEY", DEFAULT_API_KEY)
    if not api_key.strip():
        raise ConfigError("M3W_API_KEY is empty: set it to the key your apps send in X-API-Key")
    if api_key != api_key.strip():
        # A header value loses its surrounding whitespace (RFC 9110): no request could match.
        raise ConfigError("M3W_API_KEY starts or ends with whitespace: remove it")
    return Settings(
        api_key=api_key,
        database_url=parse_database_url(env),
        migrate_database_url=_migrate_database_url(env),
        host=env.get("M3W_HOST", "0.0.0.0"),
        port=_int(env, "PORT", 8080, 1, 65535),
        workers=_int(env, "M3W_WORKERS", 2, 1, 64),
        max_body_bytes=_int(env, "M3W_MAX_BODY_BYTES", 64 * 1024, 1024, 64 * 1024 * 1024),
        db_pool_size=_int(env, "M3W_DB_POOL_SIZE", 4, 1, 100),
        db_timeout_seconds=_int(env, "M3W_DB_TIMEOUT_SECONDS", 3, 1, 300),
        data_dir=Path(env.get("M3W_DATA_DIR", ".m3w")).expanduser().resolve(),
        embedded_db_port=_int(env, "M3W_EMBEDDED_DB_PORT", 5433, 1, 65535),
        batch_max_rows=_int(env, "M3W_BATCH_MAX_ROWS", 500, 1, 10_000),
        batch_window_ms=_int(env, "M3W_BATCH_WINDOW_MS", 5, 0, 60_000),
        queue_max_rows=_int(env, "M3W_QUEUE_MAX_ROWS", 10_000, 1, 1_000_000),
        batch_endpoint_max_items=_int(env, "M3W_BATCH_MAX_ITEMS", 500, 1, 10_000),
        batch_endpoint_max_bytes=_int(
            env, "M3W_MAX_BATCH_BODY_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024
        ),
        graceful_shutdown_seconds=_int(env, "GRACEFUL_SHUTDOWN_TIMEOUT", 15, 1, 3600),
        rollup_refresh_seconds=_int(env, "M3W_ROLLUP_REFRESH_SECONDS", 60, 0, 86_400),
        # Phones on mobile networks: a head is one packet, however slow the link; 30 s carries
        # a 64 KiB summary at 2G speed and a full batch at 3G speed. The SDK itself gives up
        # after 15 s, so a longer wait only holds a connection for nobody.
        header_timeout_seconds=_int(env, "M3W_HEADER_TIMEOUT_SECONDS", 10, 1, 300),
        body_timeout_seconds=_int(env, "M3W_BODY_TIMEOUT_SECONDS", 30, 1, 3600),
        keep_alive_seconds=_int(env, "M3W_KEEP_ALIVE_SECONDS", 15, 1, 3600),
        max_connections=_int(env, "M3W_MAX_CONNECTIONS", 1000, 1, 1_000_000),
        key_cache_seconds=_int(env, "M3W_KEY_CACHE_SECONDS", 30, 1, 3600),
        rate_limit_requests=_int(env, "RATE_LIMIT_REQUESTS", 0, 0, 1_000_000_000),
        rate_limit_window_seconds=_int(env, "RATE_LIMIT_WINDOW_SEC", 60, 1, 86_400),
        retention_days=_int(env, "RETENTION_DAYS", 0, 0, 36_500),
        retention_interval_seconds=_int(env, "M3W_RETENTION_INTERVAL_SECONDS", 3600, 0, 604_800),
        rollup_retention_days=_int(env, "ROLLUP_RETENTION_DAYS", 0, 0, 36_500),
    )


def metrics_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """M3W_METRICS_DIR: where worker processes share their Prometheus samples (default: a
    fresh temporary directory per start). Read by the serving main process before it starts
    its workers: see service/metrics_dir.py."""
    env = os.environ if env is None else env
    raw = env.get("M3W_METRICS_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def parse_database_url(env: Mapping[str, str]) -> DatabaseUrl | None:
    """Accept every spelling users bring: postgres://, postgresql://, postgresql+psycopg://
    and the Kotlin backend's jdbc:postgresql://host:port/db with DATABASE_USER and
    DATABASE_PASSWORD beside it."""
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        return None
    url = raw.removeprefix("jdbc:")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ConfigError(
            "DATABASE_URL must start with postgres://, postgresql:// or "
            f"jdbc:postgresql:// (got scheme {parts.scheme!r})"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    user = env.get("DATABASE_USER") or unquote(parts.username or "") or params.get("user")
    password = (
        env.get("DATABASE_PASSWORD") or unquote(parts.password or "") or params.get("password")
    )
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise ConfigError("DATABASE_URL has no host: use postgres://user:pass@host:5432/db")
    if not database:
        raise ConfigError("DATABASE_URL has no database name: add /<db> after host:port")
    try:
        port = parts.port or 5432
    except ValueError as err:
        raise ConfigError(f"DATABASE_URL has a bad port: {err}") from None
    rest = tuple((k, v) for k, v in query if k not in ("user", "password"))
    return DatabaseUrl(user or None, password or None, parts.hostname, port, database, rest)


def _migrate_database_url(env: Mapping[str, str]) -> DatabaseUrl | None:
    """M3W_MIGRATE_DATABASE_URL: any DATABASE_URL form, with its own credentials
    (DATABASE_USER and DATABASE_PASSWORD are the service's, so they do not apply)."""
    try:
        return parse_database_url({"DATABASE_URL": env.get("M3W_MIGRATE_DATABASE_URL", "")})
    except ConfigError as err:
        raise ConfigError(str(err).replace("DATABASE_URL", "M3W_MIGRATE_DATABASE_URL")) from None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
