"""The workers' shared metrics directory: importing the package touches nothing, serving
cleans only the sample files of M3W_METRICS_DIR, and temporary directories do not pile up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.conftest import server_env
from tests.servers import REPO, RunningServer
from tests.signals import metric_or_zero, scrape


def stale_sample(directory: Path, pid: int = 99_999) -> Path:
    """A sample file as a previous run leaves it: 1000 sessions ingested."""
    path = directory / f"counter_{pid}.db"
    samples = MmapedDict(str(path))
    key = mmap_key("sessions_ingested", "sessions_ingested_total", ["tenant"], ["default"], "")
    samples.write_value(key, 1000.0, 0.0)
    samples.close()
    return path


def user_files(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"notes.txt": "mine", "dashboards.json": "{}"}
    for name, text in files.items():
        (directory / name).write_text(text)
    return files


def test_importing_the_service_touches_no_directory(tmp_path):
    metrics_dir, temp = tmp_path / "metrics", tmp_path / "tmp"
    files = user_files(metrics_dir)
    sample = stale_sample(metrics_dir)
    temp.mkdir()
    script = (
        "import json, os, service, service.app, service.cli, service.metrics, service.migrations;"
        "print(json.dumps(os.environ.get('PROMETHEUS_MULTIPROC_DIR')))"
    )
    env = {**os.environ, "M3W_METRICS_DIR": str(metrics_dir), "TMPDIR": str(temp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is None
    assert {p.name: p.read_text() for p in metrics_dir.glob("*.*") if p != sample} == files
    assert sample.exists()
    assert list(temp.iterdir()) == []


def test_serving_cleans_only_the_sample_files_of_the_metrics_dir(database_url, db, tmp_path):
    metrics_dir = tmp_path / "metrics"
    files = user_files(metrics_dir)
    sample = stale_sample(metrics_dir)
    env = server_env(database_url, M3W_METRICS_DIR=str(metrics_dir))
    with RunningServer(env, tmp_path / "server.log", workers=2) as server:
        scraped = scrape(server.url)
        assert not sample.exists()

    # The previous run's samples are not summed into this one's.
    assert metric_or_zero(scraped, "sessions_ingested_total") == 0
    for name, text in files.items():
        assert (metrics_dir / name).read_text() == text


@pytest.fixture
def short_temp_dir() -> Iterator[Path]:
    """A TMPDIR for a server. Not under tmp_path: Sanic's process manager puts a Unix
    socket in TMPDIR, and a path as deep as a pytest-xdist worker's tmp_path is longer than
    a socket's path may be."""
    temp = Path(tempfile.mkdtemp(prefix="m3w-t-"))
    yield temp
    shutil.rmtree(temp, ignore_errors=True)


def test_no_temporary_metrics_dir_is_left_behind(database_url, db, tmp_path, short_temp_dir):
    temp = short_temp_dir
    # One left by a main process killed with -9 (a pid that no longer runs).
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    orphan = temp / f"m3w-metrics-{int(gone.stdout)}-abc123"
    orphan.mkdir()
    stale_sample(orphan)
    env = server_env(database_url, TMPDIR=str(temp))

    with RunningServer(env, tmp_path / "server.log", workers=2) as server:
        in_use = list(temp.glob("m3w-metrics-*"))
        assert metric_or_zero(scrape(server.url), "sessions_ingested_total") == 0
        assert len(in_use) == 1
        assert in_use[0] != orphan
        assert list(in_use[0].glob("*.db")), "the workers' samples are not in it"

    assert list(temp.iterdir()) == []
