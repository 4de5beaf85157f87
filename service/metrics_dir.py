"""The directory in which worker processes share their Prometheus samples.

prometheus-client works in multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set in a
process before it creates its metrics (service/metrics.py does at import). So the serving
main process sets it in its `main_process_start` listener, before it spawns the workers,
which inherit it; importing `service` (`m3w migrate`, a script, a test) touches nothing. A
single-process server has no workers to sum over and keeps its samples in memory.

The directory is M3W_METRICS_DIR, of which only the sample files (`*.db`) are deleted at
start (a previous run's samples would be summed into this one's; anything else there is
left alone), or else a temporary one, removed when the main process stops; one left behind
by a main process that was killed is removed by the next start.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from sanic import Sanic

from service.config import metrics_dir

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "m3w-metrics-"
_ORPHAN = re.compile(rf"^{PREFIX}(\d+)-")

_temporary: Path | None = None  # made by this (main) process, removed when it stops


def attach(app: Sanic) -> None:
    """Prepare the directory when `app` is served by a main process with workers."""
    app.register_listener(_prepare, "main_process_start")
    app.register_listener(_release, "main_process_stop")


def prepare(configured: Path | None, temp_root: Path | None = None) -> Path:
    """Make the directory ready for this run's samples and point prometheus-client at it."""
    global _temporary
    if configured is None:
        root = temp_root or Path(tempfile.gettempdir())
        _remove_orphans(root)
        # The main process's pid in the name tells the next start whether it is still used.
        path = _temporary = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
    else:
        configured.mkdir(parents=True, exist_ok=True)
        for sample in configured.glob("*.db"):
            sample.unlink(missing_ok=True)
        path = configured
    os.environ[VARIABLE] = str(path)
    return path


def release() -> None:
    global _temporary
    if _temporary is not None:
        shutil.rmtree(_temporary, ignore_errors=True)
        _temporary = None


async def _prepare(app: Sanic) -> None:
    prepare(metrics_dir())


async def _release(app: Sanic) -> None:
    release()


def _remove_orphans(root: Path) -> None:
    """Temporary directories of main processes that no longer run (killed with -9)."""
    for path in root.glob(f"{PREFIX}*"):
        match = _ORPHAN.match(path.name)
        with contextlib.suppress(OSError):
            if match and path.stat().st_uid == os.getuid() and not _alive(int(match[1])):
                shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
