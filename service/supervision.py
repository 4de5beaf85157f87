"""Keeps the worker processes serving (main process only).

Sanic's worker manager (25.12) notices that a worker died but neither replaces it nor says
so, and its main process keeps the listening socket open: with every worker dead, each new
connection waits in the kernel's backlog for nobody. A thread of the main process watches
the workers instead: a worker that dies without being asked to is logged, its live gauges
are dropped, and Sanic's own restart starts a replacement on the same socket. Workers that
keep dying (more than RESTART_BUDGET in RESTART_WINDOW_SECONDS) stop the whole service, so
that its listening socket is closed and the orchestrator sees it down.

At a stop the main process closes its copy of the listening socket at once: the socket goes
away as soon as the workers have closed theirs too, so new connections are refused instead
of waiting in the backlog for the end of the grace period.

A stop signal is handled outside the signal handler. Sanic's handler stops the workers from
within itself, which reads and writes the shared worker states through the connection to
their manager process; when the signal lands while the main thread is inside such a call
(its monitor loop makes them ten times a second), the handler reads the interrupted call's
answer, the states get mixed up, and the main process dies with a TypeError and exit code
1 instead of stopping cleanly (seen in tests/test_faults.py). Once every worker is serving,
the handler only posts Sanic's own "__TERMINATE__" message, and the monitor loop stops the
workers between its calls. During start-up, and for a signal once the stop is under way
(Sanic then kills the workers), Sanic's handler runs as before. The line "All N workers
serving" marks the moment from which a stop signal takes the monitor loop's path.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections import deque
from typing import Any

from sanic import Sanic
from sanic.log import logger
from sanic.worker.process import ProcessState, WorkerProcess

from service import metrics

POLL_SECONDS = 0.1
RESTART_BUDGET = 10
RESTART_WINDOW_SECONDS = 60.0


class RestartBudget:
    """At most `limit` restarts in any `window` seconds."""

    def __init__(self, limit: int = RESTART_BUDGET, window: float = RESTART_WINDOW_SECONDS):
        self._limit = limit
        self._window = window
        self._restarts: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self._restarts and now - self._restarts[0] > self._window:
            self._restarts.popleft()
        if len(self._restarts) >= self._limit:
            return False
        self._restarts.append(now)
        return True


class WorkerSupervisor:
    def __init__(self, manager: Any, sockets: list[socket.socket]) -> None:
        self._manager = manager
        self._sockets = sockets
        self._budget = RestartBudget()
        self._seen_ready: set[str] = set()  # names of workers that served once
        self._announced_serving = False  # "All N workers serving" is logged once
        self._handled: set[int] = set()  # pids whose death has been dealt with
        self._replacing: dict[str, int] = {}  # name -> pid of the dead worker it replaces
        self._gave_up = False
        self._stop = threading.Event()
        self._stop_posted = False
        self._sanic_handlers: dict[int, Any] = {}

    def start(self) -> None:
        threading.Thread(target=self._watch, name="m3w-supervisor", daemon=True).start()

    def handle_stop_signals(self) -> None:
        """Take over SIGINT and SIGTERM from Sanic's manager (main thread only)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):  # the manager's; otherwise there is nothing to take over
                self._sanic_handlers[signum] = handler
                signal.signal(signum, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if not self._every_worker_served() or getattr(self._manager, "_shutting_down", False):
            # Start-up: Sanic's own stop. A signal during the stop: Sanic kills the workers.
            self._sanic_handlers[signum](signum, frame)
            return
        if self._stop_posted:
            return  # the first one is on its way to the monitor loop
        self._stop_posted = True
        logger.info("Received signal %s: stopping the workers", signal.Signals(signum).name)
        self._manager.monitor_publisher.send("__TERMINATE__")

    def _every_worker_served(self) -> bool:
        """Whether each worker has served once: from then on a stop signal is ours."""
        return len(self._seen_ready) >= self._manager.num_server

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.check()
            except Exception:  # never let the watchdog die of a race with the manager
                logger.exception("worker supervision failed")

    def check(self) -> None:
        if getattr(self._manager, "_shutting_down", False):
            self._close_sockets()
            self._stop_latecomers()
            return
        for process in list(self._manager.transient_processes):
            if not process.name.startswith(f"Sanic-{WorkerProcess.SERVER_LABEL}"):
                continue
            self._check_worker(process)

    def _check_worker(self, process: WorkerProcess) -> None:
        pid = process.pid
        if pid is None or process.state is ProcessState.RESTARTING:
            return
        if process.is_alive():
            if self._state(process.name) == ProcessState.ACKED.name:
                self._seen_ready.add(process.name)
                if self._every_worker_served() and not self._announced_serving:
                    self._announced_serving = True
                    # From here a stop signal takes the monitor loop's path (above): the
                    # moment from which stopping the service is safe.
                    logger.info("All %d workers serving", self._manager.num_server)
                dead = self._replacing.pop(process.name, None)
                if dead is not None:
                    logger.info("Worker %s replaced: pid %s serves again", process.name, pid)
            return
        # Before its first acknowledgement a dead worker is Sanic's own business (it
        # stops the start-up); a replacement that dies early is ours.
        if pid in self._handled or process.name not in self._seen_ready:
            return
        self._handled.add(pid)
        metrics.forget_process(pid)
        logger.error(
            "Worker %s (pid %s) died: %s; starting a replacement",
            process.name,
            pid,
            _describe_exit(process.exitcode),
        )
        if not self._budget.allow(time.monotonic()):
            self._give_up()
            return
        self._replacing[process.name] = pid
        # Through the manager's own channel: its monitor loop (the main thread) restarts it.
        self._manager.monitor_publisher.send(process.name)

    def _give_up(self) -> None:
        if self._gave_up:
            return
        self._gave_up = True
        logger.error(
            "Workers died more than %d times in %.0fs: stopping the service",
            RESTART_BUDGET,
            RESTART_WINDOW_SECONDS,
        )
        self._close_sockets()
        self._manager.monitor_publisher.send("__TERMINATE__")

    def _close_sockets(self) -> None:
        while self._sockets:
            with contextlib.suppress(OSError):
                self._sockets.pop().close()

    def _stop_latecomers(self) -> None:
        """A replacement started just as the stop began was not asked to stop: ask it."""
        for process in list(self._manager.transient_processes):
            if process.pid and process.is_alive() and process.state is not ProcessState.TERMINATED:
                process.terminate()

    def _state(self, name: str) -> str | None:
        try:
            return self._manager.worker_state[name].get("state")
        except (KeyError, OSError, EOFError):
            return None


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


async def supervise_workers(app: Sanic) -> None:
    """main_process_ready listener: watch the workers of this main process."""
    sockets = [
        info.settings["sock"]
        for info in app.state.server_info
        if isinstance(info.settings.get("sock"), socket.socket)
    ]
    app.ctx.supervisor = WorkerSupervisor(app.manager, sockets)
    app.ctx.supervisor.handle_stop_signals()
    app.ctx.supervisor.start()
