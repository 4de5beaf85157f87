"""The directory in which worker processes share their Prometheus samples.

prometheus-client chooses its multiprocess mode when it is first imported, from
PROMETHEUS_MULTIPROC_DIR: so the package's __init__ calls `prepare()` before any module
imports it. The main process makes the directory (fresh and empty at every start, or
M3W_METRICS_DIR emptied) and the workers it spawns inherit the variable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from service.config import metrics_dir

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> None:
    if os.environ.get("SANIC_WORKER_NAME"):
        return  # a Sanic worker: use the directory its main process prepared
    configured = metrics_dir()
    if configured is None:
        path = tempfile.mkdtemp(prefix="m3w-metrics-")
        # Ours alone: gone when this (main) process ends, after its workers.
        atexit.register(shutil.rmtree, path, True)
    else:
        # Samples of a previous run would be summed into this one's: start empty.
        shutil.rmtree(configured, ignore_errors=True)
        configured.mkdir(parents=True)
        path = str(configured)
    os.environ[VARIABLE] = path
