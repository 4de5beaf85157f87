"""`m3w serve` with no DATABASE_URL: the README's one command, on the embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

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
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                time.sleep(1)  # let Sanic's manager see its workers up (see tests/servers.py)
                return process
        except httpx.HTTPError:
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
    assert "First start" in output
    assert str(data_dir) in output
    assert f"POST http://127.0.0.1:{port}/v1/sessions" in output
    assert f"psql 'postgresql://postgres@127.0.0.1:{db_port}/media3watch'" in output
    assert "Stopping the embedded PostgreSQL" in output

    process = start_m3w(data_dir, port, db_port, log)
    try:
        # The connection string the banner printed for psql and Grafana.
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{db_port}/media3watch") as conn:
            rows = conn.execute("SELECT session_id, startup_time_ms FROM sessions").fetchall()
        assert rows == [("3f0c7a52-6a1e-4d0b-9a53-1b8f2f0f6c11", 450)]
    finally:
        stop(process)
    assert log.read_text().count("First start") == 1


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
