"""`m3w`: run the service (with an embedded PostgreSQL unless DATABASE_URL is set) and
apply migrations."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from service.config import ConfigError, DatabaseUrl, Settings, load_settings
from service.embedded_db import EmbeddedDatabaseError
from service.migrations import MigrationError, dbmate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="m3w", description="Media3Watch backend: playback-quality session ingestion."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="serve the API (embedded PostgreSQL in M3W_DATA_DIR unless DATABASE_URL)"
    )
    commands.add_parser("migrate", help="apply pending migrations to the configured database")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            serve(settings)
        else:
            with database(settings) as url:
                _say(dbmate(url, "up").stdout.strip() or "Database is up to date.")
    except (ConfigError, MigrationError, EmbeddedDatabaseError) as err:
        print(f"m3w: {err}", file=sys.stderr)
        return 2
    return 0


def serve(settings: Settings) -> None:
    with database(settings) as url:
        _say("Applying migrations (dbmate up)...")
        _say(dbmate(url, "up").stdout.strip() or "Database is up to date.")
        # Workers are separate processes that read their settings from the environment.
        os.environ["DATABASE_URL"] = url.libpq
        _print_banner(settings, url)
        _run_sanic(settings)


@contextmanager
def database(settings: Settings) -> Iterator[DatabaseUrl]:
    """The configured database, or the embedded one, started for the duration."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    from service.embedded_db import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir / "pgdata", settings.embedded_db_port)
    if embedded.is_initialised:
        _say(f"Starting the embedded PostgreSQL in {embedded.pgdata} ...")
    else:
        _say(f"First start: creating a PostgreSQL database in {embedded.pgdata} ...")
    began = time.monotonic()
    with embedded.running() as url:
        _say(f"PostgreSQL is ready on 127.0.0.1:{embedded.port} ({time.monotonic() - began:.1f}s).")
        try:
            yield url
        finally:
            if embedded.started_here:
                _say("Stopping the embedded PostgreSQL ...")


def _run_sanic(settings: Settings) -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from service.app import create_app

    loader = AppLoader(factory=create_app)
    app = loader.load()
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # One worker needs no process manager (and avoids its start-up signal race).
        single_process=settings.workers == 1,
        motd=False,
        access_log=False,
    )
    Sanic.serve(primary=app, app_loader=loader)


def _print_banner(settings: Settings, url: DatabaseUrl) -> None:
    shown_host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    lines = [
        "",
        "Media3Watch backend",
        f"  Send sessions to:  POST http://{shown_host}:{settings.port}/v1/sessions"
        + f"  (X-API-Key: {'dev-key' if settings.uses_default_api_key else '<M3W_API_KEY>'})",
        f"  API docs:          http://{shown_host}:{settings.port}/docs",
        f"  Database:          {url.redacted()}",
    ]
    if settings.database_url is None:
        lines += [
            f"  Data lives in:     {settings.data_dir} (kept across restarts)",
            f"  psql:              psql 'postgresql://postgres@127.0.0.1:{url.port}/{url.database}'",
            f"  Grafana:           PostgreSQL datasource, host 127.0.0.1:{url.port}, "
            f"database {url.database}, user postgres, no password, SSL disable",
        ]
    if settings.exposes_default_key(settings.host):
        lines.append(
            "  WARNING: the default API key 'dev-key' is accepted on a public address; "
            "set M3W_API_KEY."
        )
    _say("\n".join(lines) + "\n")


def _say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
