"""All configuration, read from the environment and checked once, at start-up.

Every setting the service has is a field of `Settings` (M3W_METRICS_DIR aside: see
metrics_dir), with the variable it comes from, its default and its range. A bad value stops
start-up with a message that names the variable to set, so a typo never surfaces as a 500
at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from annotated_types import Ge, Le
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource
from sqlalchemy.engine import URL

DEFAULT_API_KEY = "dev-key"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which variable to fix."""


@dataclass(frozen=True)
class DatabaseUrl:
    """One PostgreSQL location, spelled for each tool that needs it."""

    user: str | None
    password: str | None = field(repr=False)  # kept out of reprs, tracebacks and logs
    host: str
    port: int
    database: str
    query: tuple[tuple[str, str], ...] = ()

    def _sqlalchemy_url(self, drivername: str) -> URL:
        return URL.create(
            drivername,
            username=self.user or None,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.database,
            query=dict(self.query),
        )

    @property
    def sqlalchemy(self) -> str:
        """For PugSQL (SQLAlchemy with the psycopg 3 driver), in SQLAlchemy's own spelling."""
        return self._sqlalchemy_url("postgresql+psycopg").render_as_string(hide_password=False)

    @property
    def libpq(self) -> str:
        """For dbmate, psql and Grafana-style clients."""
        query = list(self.query)
        # dbmate's driver requires TLS unless told otherwise ("pq: SSL is not enabled on
        # the server"), while libpq and psycopg only prefer it; spell the libpq default out
        # so every tool behaves the same.
        if not any(key == "sslmode" for key, _ in query):
            query.append(("sslmode", "prefer"))
        # Not SQLAlchemy's rendering: it leaves a space in a password unescaped, and dbmate
        # (Go's net/url) then refuses the whole URL ("invalid userinfo").
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"postgres://{auth}{host}:{self.port}/{quote(self.database, safe='')}"
        return url + "?" + urlencode(query)

    def redacted(self) -> str:
        """The URL with the password shown as ***, fit for logs."""
        return self._sqlalchemy_url("postgres").render_as_string(hide_password=True)


def _int(variable: str, default: int, low: int, high: int) -> Any:
    """A whole number read from `variable`, from low to high (both included)."""
    return Field(default, ge=low, le=high, validation_alias=variable)


class Settings(BaseSettings, frozen=True):
    """Every setting: the variable it is read from (validation_alias), its default, its range.

    Built by `load_settings` from the one environment it reads; a value set to a blank
    string counts as unset (see `_Environment`)."""

    api_key: str = Field(DEFAULT_API_KEY, validation_alias="M3W_API_KEY", repr=False)
    # Credentials beside a URL without them (the Kotlin backend's JDBC form); they win over
    # the URL's own. Read only to build database_url, whose validator reads them (so they
    # come before it).
    database_user: str | None = Field(None, validation_alias="DATABASE_USER")
    database_password: str | None = Field(None, validation_alias="DATABASE_PASSWORD", repr=False)
    # None: `m3w serve` runs an embedded PostgreSQL
    database_url: DatabaseUrl | None = Field(None, validation_alias="DATABASE_URL")
    # The schema owner's credentials for `m3w migrate` and the migrations of `m3w serve`
    # (docs/deploy.md); None: DATABASE_URL migrates too.
    migrate_database_url: DatabaseUrl | None = Field(
        None, validation_alias="M3W_MIGRATE_DATABASE_URL"
    )
    host: str = Field("0.0.0.0", validation_alias="M3W_HOST")
    port: int = _int("PORT", 8080, 1, 65535)
    workers: int = _int("M3W_WORKERS", 2, 1, 64)
    max_body_bytes: int = _int("M3W_MAX_BODY_BYTES", 64 * 1024, 1024, 64 * 1024 * 1024)
    db_pool_size: int = _int("M3W_DB_POOL_SIZE", 4, 1, 100)
    db_timeout_seconds: int = _int("M3W_DB_TIMEOUT_SECONDS", 3, 1, 300)
    # Resolved once, so a later chdir cannot move the embedded database.
    data_dir: Path = Field(Path(".m3w"), validation_alias="M3W_DATA_DIR", validate_default=True)
    embedded_db_port: int = _int("M3W_EMBEDDED_DB_PORT", 5433, 1, 65535)
    # group commit: rows per transaction (1 = one commit per session)
    batch_max_rows: int = _int("M3W_BATCH_MAX_ROWS", 500, 1, 10_000)
    # group commit: how long queued rows wait for the commit in flight to end before another
    # commit starts beside it (a lone request never waits: it commits at once)
    batch_window_ms: int = _int("M3W_BATCH_WINDOW_MS", 5, 0, 60_000)
    # rows waiting for a commit, per worker, before answering 503
    queue_max_rows: int = _int("M3W_QUEUE_MAX_ROWS", 10_000, 1, 1_000_000)
    batch_endpoint_max_items: int = _int("M3W_BATCH_MAX_ITEMS", 500, 1, 10_000)
    batch_endpoint_max_bytes: int = _int(
        "M3W_MAX_BATCH_BODY_BYTES", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024
    )
    graceful_shutdown_seconds: int = _int("GRACEFUL_SHUTDOWN_TIMEOUT", 15, 1, 3600)
    # 0: no refresh from the service (an external job does it)
    rollup_refresh_seconds: int = _int("M3W_ROLLUP_REFRESH_SECONDS", 60, 0, 86_400)
    # Slow or broken clients (service/connections.py): a request's head must arrive within
    # header_timeout of its first byte and its body within body_timeout of the head, however
    # slowly it trickles in; an idle keep-alive connection closes after keep_alive.
    # Phones on mobile networks: a head is one packet, however slow the link; 30 s carries
    # a 64 KiB summary at 2G speed and a full batch at 3G speed. The SDK itself gives up
    # after 15 s, so a longer wait only holds a connection for nobody.
    header_timeout_seconds: int = _int("M3W_HEADER_TIMEOUT_SECONDS", 10, 1, 300)
    body_timeout_seconds: int = _int("M3W_BODY_TIMEOUT_SECONDS", 30, 1, 3600)
    keep_alive_seconds: int = _int("M3W_KEEP_ALIVE_SECONDS", 15, 1, 3600)
    # per worker; beyond, a new connection gets 503 and is closed
    max_connections: int = _int("M3W_MAX_CONNECTIONS", 1000, 1, 1_000_000)
    # How long a worker trusts what it learnt about an API key (service/key_auth.py): a
    # revoked or expired key is refused everywhere within this many seconds.
    key_cache_seconds: int = _int("M3W_KEY_CACHE_SECONDS", 30, 1, 3600)
    # Requests per window and API key across the whole deployment (service/rate_limit.py);
    # 0: no limit (the default: every phone of an app shares its key). A key's own
    # `--rate-limit` overrides it.
    rate_limit_requests: int = _int("RATE_LIMIT_REQUESTS", 0, 0, 1_000_000_000)
    rate_limit_window_seconds: int = _int("RATE_LIMIT_WINDOW_SEC", 60, 1, 86_400)
    # Sessions whose ended_at is older than this many days are pruned (service/retention.py);
    # 0: kept forever. A tenant's own `--retention-days` overrides it.
    retention_days: int = _int("RETENTION_DAYS", 0, 0, 36_500)
    # 0: the service never prunes (`m3w prune` does)
    retention_interval_seconds: int = _int("M3W_RETENTION_INTERVAL_SECONDS", 3600, 0, 604_800)
    # dashboard rollups outlive the sessions; 0: forever
    rollup_retention_days: int = _int("ROLLUP_RETENTION_DAYS", 0, 0, 36_500)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No source of its own: load_settings hands over the one environment it reads
        # (os.environ, or the mapping a test gives instead of it), so nothing else can slip
        # in: no .env file (compose passes .env itself), no secrets directory.
        return (init_settings,)

    @field_validator("api_key")
    @classmethod
    def _usable_in_a_header(cls, api_key: str) -> str:
        if not api_key.strip():
            raise ConfigError("M3W_API_KEY is empty: set it to the key your apps send in X-API-Key")
        if api_key != api_key.strip():
            # A header value loses its surrounding whitespace (RFC 9110): no request could match.
            raise ConfigError("M3W_API_KEY starts or ends with whitespace: remove it")
        return api_key

    @field_validator("database_url", mode="before")
    @classmethod
    def _service_url(cls, raw: str, info: ValidationInfo) -> DatabaseUrl | None:
        user, password = info.data.get("database_user"), info.data.get("database_password")
        return _parse_url(raw, "DATABASE_URL", user, password)

    @field_validator("migrate_database_url", mode="before")
    @classmethod
    def _migrate_url(cls, raw: str) -> DatabaseUrl | None:
        # Its own credentials: DATABASE_USER and DATABASE_PASSWORD are the service's.
        return _parse_url(raw, "M3W_MIGRATE_DATABASE_URL", None, None)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, data_dir: Path) -> Path:
        return data_dir.expanduser().resolve()

    @property
    def uses_default_api_key(self) -> bool:
        return self.api_key == DEFAULT_API_KEY

    def exposes_default_key(self, host: str) -> bool:
        """Whether serving on `host` offers the well-known default key to other machines."""
        return self.uses_default_api_key and not _is_loopback(host)


class _Environment(EnvSettingsSource):
    """pydantic-settings' reader of environment variables, over a given mapping."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(Settings, case_sensitive=True)
        # Blank means unset, so the default applies: compose and Procfiles pass `VAR=` for
        # a variable left empty. Not for M3W_API_KEY: a blank key is a mistake to report,
        # not a reason to fall back to the public default key.
        self.env_vars = {
            name: value for name, value in environ.items() if value.strip() or name == "M3W_API_KEY"
        }

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        # Every value reaches the model as the string it was set to (no JSON decoding of
        # the URL fields): the model's validators parse it.
        return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ConfigError naming the variable at fault."""
    try:
        return Settings(**_Environment(os.environ if env is None else env)())
    except ValidationError as err:
        raise _config_error(err) from None


def _config_error(err: ValidationError) -> ConfigError:
    """The first fault, in our words (pydantic's own text would not say what to set)."""
    fault = err.errors(include_url=False)[0]
    variable, given = fault["loc"][0], fault["input"]
    if isinstance(fault.get("ctx", {}).get("error"), ConfigError):
        return fault["ctx"]["error"]  # our validators' message already names the variable
    if fault["type"] in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(variable)
        return ConfigError(f"{variable} must be between {low} and {high}, got {str(given).strip()}")
    if fault["type"].startswith("int_"):
        return ConfigError(f"{variable} must be a whole number, got {given!r}")
    return ConfigError(f"{variable} is not valid ({fault['msg']}), got {given!r}")


def _bounds(variable: object) -> tuple[int, int]:
    [info] = [f for f in Settings.model_fields.values() if f.validation_alias == variable]
    low = next(m.ge for m in info.metadata if isinstance(m, Ge))
    high = next(m.le for m in info.metadata if isinstance(m, Le))
    return low, high


def metrics_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """M3W_METRICS_DIR: where worker processes share their Prometheus samples (default: a
    fresh temporary directory per start). Read by the serving main process before it starts
    its workers: see service/metrics_dir.py."""
    env = os.environ if env is None else env
    raw = env.get("M3W_METRICS_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def parse_database_url(env: Mapping[str, str]) -> DatabaseUrl | None:
    """DATABASE_URL, with DATABASE_USER and DATABASE_PASSWORD beside it, as Settings reads it."""
    return _parse_url(
        env.get("DATABASE_URL"),
        "DATABASE_URL",
        env.get("DATABASE_USER"),
        env.get("DATABASE_PASSWORD"),
    )


def _parse_url(
    raw: str | None, variable: str, user: str | None, password: str | None
) -> DatabaseUrl | None:
    """Accept every spelling users bring: postgres://, postgresql://, postgresql+psycopg://
    and the Kotlin backend's jdbc:postgresql://host:port/db (credentials beside it, or as
    user= and password= in its query). `user` and `password` win over the URL's own.

    Parsed with urllib, not SQLAlchemy's make_url: a password pasted with an unescaped @
    splits at the last @ here (the host follows it), at the first one there."""
    raw = (raw or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw.removeprefix("jdbc:"))
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ConfigError(
            f"{variable} must start with postgres://, postgresql:// or "
            f"jdbc:postgresql:// (got scheme {parts.scheme!r})"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    user = user or unquote(parts.username or "") or params.get("user")
    password = password or unquote(parts.password or "") or params.get("password")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise ConfigError(f"{variable} has no host: use postgres://user:pass@host:5432/db")
    if not database:
        raise ConfigError(f"{variable} has no database name: add /<db> after host:port")
    try:
        port = parts.port or 5432
    except ValueError as err:
        raise ConfigError(f"{variable} has a bad port: {err}") from None
    rest = tuple((k, v) for k, v in query if k not in ("user", "password"))
    return DatabaseUrl(user or None, password or None, parts.hostname, port, database, rest)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
