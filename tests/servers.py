"""Real processes and sockets for the tests: the service as users start it, and a TCP proxy
that can cut PostgreSQL off to stage an outage."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parent.parent


def _ephemeral_ports() -> range:
    """The ports the kernel hands out for bind(0) and for every outgoing connection."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def port_slice(worker: str, workers: int) -> range:
    """A pytest-xdist worker's own ports ("gw0", "gw1"...), below the ephemeral range:
    each worker walks its own slice, so two of them never pick the same port."""
    top = min(_ephemeral_ports().start, 32768)
    bottom = 20000
    index = int(worker.removeprefix("gw") or 0)
    size = (top - bottom) // workers
    return range(bottom + index * size, bottom + (index + 1) * size)


_ports = port_slice(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0"),
    int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
)
_next_port = itertools.count(random.randrange(len(_ports)))


def free_port() -> int:
    """A port for a server a test starts. Not bind(0)'s pick: that port is ephemeral, and
    between our check and the server's own bind any outgoing connection (a database
    client, an HTTP client, the other xdist worker's check) may be given it, and the
    server then fails with "Address already in use". The kernel never picks a port below
    its ephemeral range, and each worker has its own slice of those."""
    for _ in range(len(_ports)):
        port = _ports[next(_next_port) % len(_ports)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still in TIME_WAIT: take the next one
            return port
    raise RuntimeError(f"no free port in {_ports}")


class RunningServer:
    """`sanic service.app:create_app --factory` in a subprocess, as the Procfile starts it."""

    def __init__(
        self, env: dict[str, str], log_file: Path, workers: int = 1, host: str = "127.0.0.1"
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        command = [
            sys.executable,
            "-m",
            "sanic",
            "service.app:create_app",
            "--factory",
            f"--host={host}",
            f"--port={self.port}",
            "--no-motd",
            # One worker runs without Sanic's process manager, which hangs if SIGTERM comes
            # while it still polls its workers' start-up acknowledgements (sanic 25.12);
            # with more, the tests start once the manager has seen every one serving.
            *(["--single-process"] if workers == 1 else [f"--workers={workers}"]),
        ]
        self._log = log_file.open("ab")
        self._log_start = self._log.tell()  # the log may hold earlier runs
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches the workers
        )
        self._wait_until_healthy()
        self._wait_until_workers_ready(workers)
        if workers > 1:
            # From then on a stop signal is ours to handle (service/supervision.py).
            self._wait_for_log(f"All {workers} workers serving".encode())

    def _wait_until_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def _wait_until_workers_ready(self, workers: int) -> None:
        """/health answers as soon as one worker does: wait for every one of them."""
        self._wait_for_log(b"Worker ready", workers)

    def _wait_for_log(self, line: bytes, count: int = 1, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.log_file.read_bytes()[self._log_start :].count(line) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"never logged {line!r} x{count}:\n{self.log()}")
            time.sleep(0.05)

    def client(self, api_key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as compose, Heroku and Kubernetes stop a process; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.terminate()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL. `cut()` drops every connection and refuses
    new ones, as a crashed server would; `freeze()` keeps connections open but carries
    nothing, as a hung server or a black-holed network would; `restore()` undoes either."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()
        self._flowing.set()
        # Set when something reaches the frozen database: a call of the service is stuck.
        self.holding = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def freeze(self) -> None:
        self.holding.clear()
        self._flowing.clear()

    def restore(self) -> None:
        self._open.set()
        self._flowing.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()  # the client sees its connection reset at once
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._flowing.is_set():
                    self.holding.set()
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
