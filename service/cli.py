"""`m3w`: run the service (with an embedded PostgreSQL unless DATABASE_URL is set), apply
migrations, manage tenants and API keys (service/admin.py)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service import admin
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
    prune = commands.add_parser(
        "prune",
        help="delete the sessions past their retention (RETENTION_DAYS, a tenant's "
        "--retention-days) and rollup rows past ROLLUP_RETENTION_DAYS, now; prints what it "
        "deletes per tenant",
    )
    prune.add_argument("--dry-run", action="store_true", help="only print what it would delete")
    admin.add_commands(commands)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            serve(settings)
        elif args.command in admin.COMMANDS:
            # As the schema owner, like the migrations; stdout is the command's own (a new
            # key alone on it), so the embedded database's messages go to stderr.
            with database(settings, say=_say_on_stderr) as db:
                return admin.run(args, db.migrations, settings.key_cache_seconds)
        elif args.command == "prune":
            from service import retention  # imports the service's modules: only when used

            # As the schema owner, like the admin commands; the report alone on stdout.
            with database(settings, say=_say_on_stderr) as db:
                return retention.run_command(args.dry_run, db.migrations, settings)
        else:
            with database(settings) as db:
                _say(dbmate(db.migrations, "up").stdout.strip() or "Database is up to date.")
    except (ConfigError, MigrationError, EmbeddedDatabaseError) as err:
        print(f"m3w: {err}", file=sys.stderr)
        return 2
    return 0


@dataclass(frozen=True)
class Database:
    """Who applies the migrations and who serves: M3W_MIGRATE_DATABASE_URL (else
    DATABASE_URL) and DATABASE_URL, or on the embedded PostgreSQL the owner role and the
    service role of db/init/roles.sql."""

    migrations: DatabaseUrl
    service: DatabaseUrl
    passfile: Path | None = None  # embedded: where its passwords are


def serve(settings: Settings) -> None:
    with database(settings) as db:
        _say("Applying migrations (dbmate up)...")
        _say(dbmate(db.migrations, "up").stdout.strip() or "Database is up to date.")
        # Workers are separate processes that read their settings from the environment.
        os.environ["DATABASE_URL"] = db.service.libpq
        _print_banner(settings, db)
        _run_sanic(settings)


@contextmanager
def database(settings: Settings, say: Callable[[str], None] | None = None) -> Iterator[Database]:
    """The configured database, or the embedded one, started for the duration."""
    say = say or _say
    if settings.database_url is not None:
        yield Database(
            settings.migrate_database_url or settings.database_url, settings.database_url
        )
        return
    from service.embedded_db import OWNER_ROLE, SERVICE_ROLE, EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir / "pgdata", settings.embedded_db_port)
    if embedded.is_initialised:
        say(f"Starting the embedded PostgreSQL in {embedded.pgdata} ...")
    else:
        say(f"First start: creating a PostgreSQL database in {embedded.pgdata} ...")
    began = time.monotonic()
    with embedded.running():
        # Least privilege here too: the service logs in as a role that can write sessions
        # and refresh rollups, and nothing else.
        embedded.init_roles()
        say(f"PostgreSQL is ready on 127.0.0.1:{embedded.port} ({time.monotonic() - began:.1f}s).")
        try:
            yield Database(
                embedded.role_url(OWNER_ROLE), embedded.role_url(SERVICE_ROLE), embedded.passfile
            )
        finally:
            if embedded.started_here:
                say("Stopping the embedded PostgreSQL ...")


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


def _print_banner(settings: Settings, db: Database) -> None:
    url = db.service
    shown_host = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    lines = [
        "",
        "Media3Watch backend",
        f"  Send sessions to:  POST http://{shown_host}:{settings.port}/v1/sessions"
        + f"  (X-API-Key: {_key_hint(settings)})",
        f"  API docs:          http://{shown_host}:{settings.port}/docs",
        f"  Database:          {url.redacted()}",
    ]
    if db.passfile is not None:
        from service.embedded_db import GRAFANA_ROLE, SUPERUSER

        # The passwords stay in their 0600 file; the banner says where, never what.
        passfile = shlex.quote(str(db.passfile))
        lines += [
            f"  Data lives in:     {settings.data_dir} (kept across restarts)",
            f"  Passwords:         {db.passfile} (readable by you only)",
            f"  psql:              PGPASSFILE={passfile} psql "
            f"'postgresql://{SUPERUSER}@127.0.0.1:{url.port}/{url.database}'",
            f"  Grafana:           PostgreSQL datasource, host 127.0.0.1:{url.port}, "
            f"database {url.database}, user {GRAFANA_ROLE} (read-only), password: the "
            f"{GRAFANA_ROLE} line of the passwords file, SSL disable",
        ]
    if settings.exposes_default_key(settings.host):
        lines.append(
            "  WARNING: the default API key 'dev-key' is accepted on a public address "
            "until the first `m3w keys create`; create keys or set M3W_API_KEY."
        )
    _say("\n".join(lines) + "\n")


def _key_hint(settings: Settings) -> str:
    # The database decides about dev-key (service/key_auth.py): say when it stops working.
    if settings.uses_default_api_key:
        return "a key from `m3w keys create`, or dev-key until the first one exists"
    return "<M3W_API_KEY> or a key from `m3w keys create`"


def _say(message: str) -> None:
    print(message, flush=True)


def _say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
