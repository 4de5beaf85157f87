"""Faults under load, as an operator would cause them, on a real PostgreSQL of this module's
own (it is restarted, crashed and frozen, which the suite's shared server must not be): each
test counts the 2xx answers against the rows, and no acknowledged session may be missing.

Every wait synchronises on a real signal (answers, rows, log lines, processes); the only
durations are the faults' own (a 15 s freeze) and the clients' SDK timeout.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from service.config import DatabaseUrl
from service.embedded_db import EmbeddedPostgres
from service.migrations import dbmate
from service.supervision import RestartBudget, WorkerSupervisor
from tests.conftest import TEST_API_KEY, server_env
from tests.load import SDK_TIMEOUT_SECONDS, Load, Outcome, wait_until
from tests.payloads import payload_a
from tests.servers import RunningServer, TcpProxy, free_port
from tests.test_writer import metric

GRACE_SECONDS = 5
FREEZE_SECONDS = 15
NOISE = ("Future exception was never retrieved", "Traceback", "Event loop stopped")


class FaultyPostgres:
    """The module's PostgreSQL, and the faults an operator (or the kernel) inflicts on it."""

    def __init__(self, root: Path) -> None:
        self.embedded = EmbeddedPostgres(root / "pgdata", free_port(), database="faults")

    @property
    def url(self) -> DatabaseUrl:
        return self.embedded.url

    def restart(self, mode: str) -> None:
        """`pg_ctl restart`: `fast` (clean stop) or `immediate` (a crash: recovery at start)."""
        self.embedded._pg_ctl(
            ["restart", "--wait", f"--mode={mode}", "--log", str(self.embedded.log_file)]
        )

    def processes(self) -> list[psutil.Process]:
        postmaster = int((self.embedded.pgdata / "postmaster.pid").read_text().split()[0])
        parent = psutil.Process(postmaster)
        return [parent, *parent.children(recursive=True)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its backends: a hung server (connections stay open)."""
        for process in self.processes():
            process.suspend()

    def thaw(self) -> None:
        for process in reversed(self.processes()):
            process.resume()

    def stored(self, session_ids: list[str]) -> set[str]:
        with psycopg.connect(self.url.libpq) as conn:
            rows = conn.execute(
                "SELECT session_id FROM sessions WHERE session_id = ANY(%s)", (session_ids,)
            ).fetchall()
        return {row[0] for row in rows}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyPostgres]:
    database = FaultyPostgres(tmp_path_factory.mktemp("faults-pg"))
    with database.embedded.running():
        dbmate(database.url, "up")
        yield database


@pytest.fixture
def start_server(postgres: FaultyPostgres, tmp_path: Path) -> Iterator:
    started: list[RunningServer] = []

    def start(url: DatabaseUrl | None = None, workers: int = 2, **env: str) -> RunningServer:
        env = {"GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACE_SECONDS), **env}
        log = tmp_path / f"server{len(started)}.log"
        server = RunningServer(server_env(url or postgres.url, **env), log, workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            psutil.wait_procs(_group(server), timeout=10)
            server.process.wait()


def _group(server: RunningServer) -> list[psutil.Process]:
    try:
        main = psutil.Process(server.process.pid)
        return [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def worker_pids(server: RunningServer) -> set[int]:
    """The worker processes: the children that hold the listening socket."""
    pids = set()
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
                for c in child.net_connections(kind="tcp")
            ):
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def serving_workers(server: RunningServer, count: int) -> set[int]:
    wait_until(lambda: len(worker_pids(server)) == count, f"{count} workers listening")
    return worker_pids(server)


def log_lines(server: RunningServer, pattern: str) -> list[str]:
    return [line for line in server.log().splitlines() if re.search(pattern, line)]


def assert_no_acknowledged_session_missing(postgres: FaultyPostgres, outcomes: list[Outcome]):
    acknowledged = [o.session_id for o in outcomes if o.acknowledged]
    assert len(acknowledged) >= 100, "the load never got going"
    missing = set(acknowledged) - postgres.stored(acknowledged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged sessions missing"


def assert_every_answer_is_2xx_or_retryable(outcomes: list[Outcome]) -> None:
    """Each request got an answer within the SDK's timeout: a 2xx, or a 503 that says retry."""
    wrong = [o for o in outcomes if not o.acknowledged and o.status != 503]
    assert not wrong, f"{len(wrong)} requests were not answered 2xx/503, e.g. {wrong[:3]}"
    codes = {o.code for o in outcomes if o.status == 503}
    assert codes <= {"DATABASE_ERROR", "QUEUE_FULL"}, codes


def assert_quiet_log(server: RunningServer) -> None:
    log = server.log()
    for noise in NOISE:
        assert noise not in log, f"log has {noise!r}:\n{log[-3000:]}"


def assert_one_line_per_outage(server: RunningServer, workers: int) -> None:
    """Each worker says once that PostgreSQL went away and once that it is back."""
    lost = log_lines(server, "PostgreSQL is unreachable")
    back = log_lines(server, "PostgreSQL answers again")
    assert 1 <= len(lost) <= workers, lost
    assert len(back) == len(lost), back


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_under_load_loses_nothing(postgres, start_server, mode):
    server = start_server()
    with Load(server.url, TEST_API_KEY) as load:
        load.wait_for_acks(100)
        postgres.restart(mode)
        restarted = time.monotonic()
        load.wait_for_acks(100, since=restarted)  # recovered by itself
        outcomes = load.stop()

    assert_every_answer_is_2xx_or_retryable(outcomes)
    assert_no_acknowledged_session_missing(postgres, outcomes)
    with server.client(TEST_API_KEY) as api:
        assert api.get("/health/ready").status_code == 200
    assert server.terminate() == 0
    assert_quiet_log(server)
    if mode == "immediate":  # a crash always fails the calls in flight
        assert_one_line_per_outage(server, workers=2)


def test_15s_freeze_under_load_answers_in_time_and_recovers(postgres, start_server):
    server = start_server()
    with Load(server.url, TEST_API_KEY) as load:
        load.wait_for_acks(100)
        postgres.freeze()
        try:
            frozen = time.monotonic()
            load.wait_for(
                lambda: sum(o.status == 503 for o in load.outcomes() if o.sent_at > frozen) >= 20,
                "requests answered 503 while PostgreSQL is frozen",
            )
            # Readiness probes give up after ~1 s: the answer must come first.
            ready = httpx.get(server.url + "/health/ready", timeout=1)
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "DATABASE_ERROR"
            wait_until(lambda: time.monotonic() - frozen >= FREEZE_SECONDS, "the freeze's end")
        finally:
            postgres.thaw()
        thawed = time.monotonic()
        load.wait_for_acks(100, since=thawed)
        outcomes = load.stop()

    assert_every_answer_is_2xx_or_retryable(outcomes)
    assert_no_acknowledged_session_missing(postgres, outcomes)
    assert server.terminate() == 0
    assert_quiet_log(server)
    assert_one_line_per_outage(server, workers=2)


def test_killed_worker_is_replaced_while_the_other_answers(postgres, start_server):
    server = start_server()
    first, second = sorted(serving_workers(server, 2))
    with Load(server.url, TEST_API_KEY) as load:
        load.wait_for_acks(100)
        psutil.Process(first).kill()
        killed = time.monotonic()
        load.wait_for(
            lambda: log_lines(server, "replaced"), "the log line of the replacement", timeout=30
        )
        replacement = serving_workers(server, 2) - {second}
        assert replacement and first not in replacement
        load.wait_for_acks(100, since=time.monotonic())
        outcomes = load.stop()

    answered_meanwhile = [o for o in outcomes if killed <= o.sent_at and o.acknowledged]
    assert answered_meanwhile, "the surviving worker stopped answering"
    assert_no_acknowledged_session_missing(postgres, outcomes)
    died = log_lines(server, "died")
    assert len(died) == 1 and str(first) in died[0] and "SIGKILL" in died[0], died
    assert len(log_lines(server, "replaced")) == 1
    assert server.terminate() == 0


def test_with_every_worker_killed_requests_are_answered_not_hung(postgres, start_server):
    server = start_server()
    workers = serving_workers(server, 2)
    killed = [psutil.Process(pid) for pid in workers]
    for process in killed:
        process.kill()
    _, alive = psutil.wait_procs(killed, timeout=10)
    assert not alive
    with server.client(TEST_API_KEY) as api:
        api.timeout = httpx.Timeout(SDK_TIMEOUT_SECONDS)
        # Sent while no worker runs: the replacements answer it from the backlog.
        response = api.post("/v1/sessions", json=(body := payload_a()))
    assert response.status_code == 200
    assert postgres.stored([body["sessionId"]]) == {body["sessionId"]}
    assert not serving_workers(server, 2) & workers
    assert len(log_lines(server, "died")) == 2
    assert server.terminate() == 0


def test_dead_worker_queue_depth_leaves_the_gauge(postgres, start_server, tmp_path):
    """The gauge sums live workers: a killed worker's queued rows must not stay in it."""
    proxy = TcpProxy(postgres.url.host, postgres.url.port)
    via_proxy = DatabaseUrl(
        postgres.url.user, postgres.url.password, "127.0.0.1", proxy.port, postgres.url.database
    )
    metrics_dir = tmp_path / "metrics"
    server = start_server(
        via_proxy, M3W_METRICS_DIR=str(metrics_dir), M3W_DB_POOL_SIZE="1", M3W_BATCH_MAX_ROWS="1"
    )
    try:
        with Load(server.url, TEST_API_KEY, clients=8) as load:
            load.wait_for_acks(50)
            proxy.freeze()
            frozen = time.monotonic()
            # One commit per worker hangs; the rows behind it wait in the queue.
            wait_until(lambda: queue_depths(metrics_dir), "rows queued in a worker")
            victim = max(queue_depths(metrics_dir).items(), key=lambda item: item[1])[0]
            psutil.Process(victim).kill()
            wait_until(lambda: log_lines(server, "replaced"), "the replacement", timeout=30)
            proxy.restore()
            load.wait_for_acks(50, since=time.monotonic())
            outcomes = load.stop()
        scrape = httpx.get(server.url + "/metrics").text
    finally:
        proxy.close()
    assert metric(scrape, "ingest_queue_depth") == 0
    assert victim not in queue_depths(metrics_dir)
    assert any(o.sent_at > frozen for o in outcomes)
    assert_no_acknowledged_session_missing(postgres, outcomes)
    assert server.terminate() == 0


def queue_depths(metrics_dir: Path) -> dict[int, float]:
    """pid -> its queue-depth gauge, for the pids that have one and it is not zero."""
    from prometheus_client.mmap_dict import MmapedDict

    depths = {}
    for path in metrics_dir.glob("gauge_livesum_*.db"):
        pid = int(re.search(r"_(\d+)\.db$", path.name).group(1))
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if '"ingest_queue_depth"' in key and value > 0:
                depths[pid] = value
    return depths


def test_sigterm_under_keepalive_load_closes_connections_and_drains(postgres, start_server):
    # Long batch windows, so that rows are always queued when the stop comes.
    server = start_server(M3W_BATCH_WINDOW_MS="100")
    workers = serving_workers(server, 2)
    with Load(server.url, TEST_API_KEY, clients=32) as load:
        load.wait_for_acks(100)
        server.process.send_signal(signal.SIGTERM)
        load.wait_for(
            lambda: len(log_lines(server, r"Stopping worker")) == 2, "both workers stopping"
        )
        stopping = time.monotonic()
        exit_code = server.process.wait(GRACE_SECONDS + 5)
        after_exit = time.monotonic()
        load.wait_for(
            lambda: any(o.sent_at > after_exit for o in load.outcomes()), "a request after exit"
        )
        outcomes = load.stop()

    assert exit_code == 0, server.log()
    # Nothing new is served once the stop is under way: each keep-alive connection got its
    # in-flight answer, then was closed; what came later was refused or answered 503.
    late = [o for o in outcomes if o.sent_at >= stopping]
    assert late, "no request was sent during the stop"
    served_late = [o for o in late if o.status is not None and o.status != 503]
    assert not served_late, f"{len(served_late)} requests served during the stop"
    assert {o.code for o in late if o.status == 503} <= {"SHUTTING_DOWN"}
    assert_no_acknowledged_session_missing(postgres, outcomes)
    # Every worker drained its queue and finished (none cut off at the grace period).
    for pid in workers:
        assert log_lines(server, rf"Worker complete \[{pid}\]"), server.log()
    assert not log_lines(server, "did not drain|Transport is closed")
    assert_quiet_log(server)


def test_new_connections_are_refused_at_once_during_a_stop(postgres, start_server):
    server = start_server(GRACEFUL_SHUTDOWN_TIMEOUT="30")
    # A request whose body never finishes holds its worker in the stop (its grace period).
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.sendall(
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + TEST_API_KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
    )
    holder = connection_holder(server, stalled)
    try:
        server.process.send_signal(signal.SIGTERM)
        # Once the holding worker has closed its listener, nobody in the service accepts.
        wait_until(lambda: holder not in worker_pids(server), "the worker to stop listening")
        try:
            response = httpx.get(server.url + "/health", timeout=3)
        except httpx.ConnectError:
            pass  # refused at once: the client can try another instance
        else:
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "SHUTTING_DOWN"
    finally:
        stalled.close()
    assert server.process.wait(10) == 0


def connection_holder(server: RunningServer, client: socket.socket) -> int:
    """The worker pid at the other end of a client connection (once it has accepted it)."""
    local_port = client.getsockname()[1]

    def holder() -> int | None:
        for pid in worker_pids(server):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == local_port:
                    return pid
        return None

    wait_until(lambda: holder() is not None, "a worker to accept the connection")
    return holder()


def test_sigterm_while_postgres_is_frozen_exits_within_the_grace_period(postgres, start_server):
    server = start_server()
    with Load(server.url, TEST_API_KEY) as load:
        load.wait_for_acks(100)
        postgres.freeze()
        try:
            frozen = time.monotonic()
            load.wait_for(
                lambda: any(o.status == 503 for o in load.outcomes() if o.sent_at > frozen),
                "a 503 while PostgreSQL is frozen",
            )
            server.process.send_signal(signal.SIGTERM)
            try:
                exit_code = server.process.wait(GRACE_SECONDS + 5)
            except Exception:
                pytest.fail(f"still running {GRACE_SECONDS + 5}s after SIGTERM:\n{server.log()}")
        finally:
            postgres.thaw()
        outcomes = load.stop()
    assert exit_code == 0, server.log()
    # Stopped by the monitor loop, not from within the signal handler (service/supervision.py).
    assert "Received signal SIGTERM: stopping the workers" in server.log()
    assert_no_acknowledged_session_missing(postgres, outcomes)


def test_restart_budget_stops_a_crash_loop():
    budget = RestartBudget(limit=3, window=60)
    assert [budget.allow(t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert budget.allow(61)  # the first restart has left the window


class _ManagerStub:
    """What the stop handler may use of Sanic's worker manager: its monitor channel and
    flags. The shared worker states are deliberately missing: touching them from within a
    signal handler is the bug the handler avoids."""

    num_server = 2
    _shutting_down = False

    def __init__(self) -> None:
        self.posted: list[object] = []
        self.monitor_publisher = self

    def send(self, message: object) -> None:
        self.posted.append(message)


@pytest.mark.parametrize(
    ("serving", "shutting_down", "posted", "sanic_called"),
    [
        # Every worker serving: one message to the monitor loop, Sanic's handler not run.
        (2, False, ["__TERMINATE__"], 0),
        # Start-up (a worker not serving yet) and a signal during the stop: Sanic's own.
        (1, False, [], 1),
        (2, True, [], 1),
    ],
)
def test_a_stop_signal_is_handled_outside_the_signal_handler(
    serving, shutting_down, posted, sanic_called
):
    manager = _ManagerStub()
    manager._shutting_down = shutting_down
    supervisor = WorkerSupervisor(manager, [])
    supervisor._seen_ready.update(f"Sanic-Server-{n}-0" for n in range(serving))
    sanic_calls: list[int] = []
    previous_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sanic_calls.append(signum))
    try:
        supervisor.handle_stop_signals()
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # a second one before the loop took the first
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    assert manager.posted == posted
    assert len(sanic_calls) == 2 * sanic_called
