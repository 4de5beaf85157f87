"""`m3w serve` with no DATABASE_URL: the README's one command, on the embedded PostgreSQL,
which only lets in who has a password from its 0600 passfile."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from service.config import load_settings, parse_database_url
from service.embedded_db import SUPERUSER, EmbeddedDatabaseError, EmbeddedPostgres, read_passfile
from service.migrations import dbmate
from tests.payloads import SDK_EXAMPLE, SDK_HEADERS
from tests.servers import REPO, free_port


def start_m3w(data_dir: Path, port: int, db_port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        M3W_DATA_DIR=str(data_dir),
        PORT=str(port),
        M3W_EMBEDDED_DB_PORT=str(db_port),
        M3W_HOST="127.0.0.1",
    )
    workers = load_settings(env).workers
    earlier_runs = log.stat().st_size if log.exists() else 0
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            healthy = False
        # Its workers serve, as Sanic's manager sees them: a stop signal is safe from then on
        # (see tests/servers.py). One worker runs without a manager: healthy is serving.
        serving = f"All {workers} workers serving".encode() if workers > 1 else b""
        if healthy and serving in log.read_bytes()[earlier_runs:]:
            return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"m3w serve did not come up:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


def test_serve_runs_embedded_postgres_and_keeps_data_across_restarts(tmp_path):
    port, db_port, log = free_port(), free_port(), tmp_path / "m3w.log"
    data_dir = tmp_path / "data"
    url = f"http://127.0.0.1:{port}"

    process = start_m3w(data_dir, port, db_port, log)
    try:
        response = httpx.post(
            f"{url}/v1/sessions",
            content=SDK_EXAMPLE,
            headers={**SDK_HEADERS, "X-API-Key": "dev-key"},
        )
        assert response.status_code == 200
    finally:
        stop(process)

    output = log.read_text()
    passfile = data_dir / "pgpass"
    assert "First start" in output
    assert str(data_dir) in output
    assert f"POST http://127.0.0.1:{port}/v1/sessions" in output
    assert (
        f"PGPASSFILE={passfile} psql 'postgresql://postgres@127.0.0.1:{db_port}/media3watch'"
        in output
    )
    assert "user m3w_grafana (read-only)" in output
    assert "Stopping the embedded PostgreSQL" in output
    passwords = read_passfile(passfile)
    assert set(passwords) == {"postgres", "m3w_owner", "m3w_service", "m3w_grafana"}
    for password in passwords.values():
        assert password not in output  # the banner points at the file, never prints it

    process = start_m3w(data_dir, port, db_port, log)
    try:
        # The command the banner printed for psql, through libpq's passfile.
        banner_url = f"postgresql://postgres@127.0.0.1:{db_port}/media3watch"
        with psycopg.connect(banner_url, passfile=str(passfile)) as conn:
            rows = conn.execute("SELECT session_id, startup_time_ms FROM sessions").fetchall()
        assert rows == [("3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11", 450)]
    finally:
        stop(process)
    assert log.read_text().count("First start") == 1
    assert read_passfile(passfile) == passwords  # generated once, kept across restarts


def connect(db_port: int, role: str, password: str | None) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=db_port,
        dbname="media3watch",
        user=role,
        password=password,
        passfile="/nonexistent",  # only the password given here, none from ~/.pgpass
        connect_timeout=10,
    )


def test_embedded_postgres_asks_every_role_for_its_password(tmp_path):
    port, db_port, log = free_port(), free_port(), tmp_path / "m3w.log"
    data_dir = tmp_path / "data"
    process = start_m3w(data_dir, port, db_port, log)
    try:
        passfile = data_dir / "pgpass"
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        passwords = read_passfile(passfile)
        for role, password in passwords.items():
            for wrong in (None, "", "not-" + password):
                with pytest.raises(psycopg.OperationalError, match="password"):
                    connect(db_port, role, wrong).close()
            with connect(db_port, role, password) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (role,)

        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/sessions",
            content=SDK_EXAMPLE,
            headers={**SDK_HEADERS, "X-API-Key": "dev-key"},
        )
        assert response.status_code == 200
        with connect(db_port, SUPERUSER, passwords[SUPERUSER]) as conn:
            # The service's pooled connections: the ingest role, not the superuser.
            users = conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity "
                "WHERE datname = 'media3watch' AND pid <> pg_backend_pid()"
            ).fetchall()
            assert users == [("m3w_service",)]
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'sessions'")
            assert owner.fetchone() == ("m3w_owner",)
        with (
            connect(db_port, "m3w_service", passwords["m3w_service"]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("CREATE TABLE intruder (id int)")
        with connect(db_port, "m3w_grafana", passwords["m3w_grafana"]) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM sessions")
    finally:
        stop(process)


def test_a_data_dir_that_trusted_everyone_gets_passwords_at_next_start(tmp_path):
    """What `m3w serve` created before passwords: initdb --auth=trust, migrated as the
    superuser. The next start keeps the data and closes the door."""
    port, db_port, log = free_port(), free_port(), tmp_path / "m3w.log"
    data_dir = tmp_path / "data"
    old = EmbeddedPostgres(data_dir / "pgdata", db_port)
    old.pgdata.mkdir(parents=True)
    old._hand_over_to_system_user()
    old._run(
        "initdb",
        ["-D", str(old.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"],
    )
    listen = f"-c listen_addresses=127.0.0.1 -p {db_port} -c unix_socket_directories=''"
    old._pg_ctl(["start", "--wait", "--log", str(old.log_file), "-o", listen])
    try:
        trusted = f"postgresql://postgres@127.0.0.1:{db_port}"
        with psycopg.connect(f"{trusted}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE media3watch")
        url = parse_database_url({"DATABASE_URL": f"{trusted}/media3watch"})
        dbmate(url, "up")
        with psycopg.connect(f"{trusted}/media3watch") as conn:
            conn.execute(
                "INSERT INTO sessions (tenant_id, session_id, timestamp, ended_at, payload) "
                "SELECT id, 'from-before', 1, now(), '{}' FROM tenants WHERE slug = 'default'"
            )
    finally:
        old.stop()
    assert not old.passfile.exists()

    process = start_m3w(data_dir, port, db_port, log)
    try:
        assert "First start" not in log.read_text()
        with pytest.raises(psycopg.OperationalError, match="password"):
            connect(db_port, SUPERUSER, None).close()
        passwords = read_passfile(old.passfile)
        assert stat.S_IMODE(old.passfile.stat().st_mode) == 0o600
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/sessions",
            content=SDK_EXAMPLE,
            headers={**SDK_HEADERS, "X-API-Key": "dev-key"},
        )
        assert response.status_code == 200
        with connect(db_port, SUPERUSER, passwords[SUPERUSER]) as conn:
            rows = conn.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()
            assert rows == [("3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11",), ("from-before",)]
            # The tables the superuser created now belong to the migration role.
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            assert owners == [("m3w_owner",)]
    finally:
        stop(process)
    assert "trust" not in (old.pgdata / "pg_hba.conf").read_text()


def test_serve_explains_a_taken_database_port(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(M3W_DATA_DIR=str(tmp_path / "data"), M3W_EMBEDDED_DB_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert result.returncode == 2
    assert "M3W_EMBEDDED_DB_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_passfile_stays_private_and_its_loss_is_explained(tmp_path):
    embedded = EmbeddedPostgres(tmp_path / "data" / "pgdata", free_port())
    with embedded.running():
        pass
    embedded.passfile.chmod(0o644)  # loosened by hand, or by a careless copy
    with embedded.running():
        assert stat.S_IMODE(embedded.passfile.stat().st_mode) == 0o600

    embedded.passfile.unlink()
    with pytest.raises(EmbeddedDatabaseError, match="pgpass is missing"):
        embedded.start()
    assert not embedded.is_running()
