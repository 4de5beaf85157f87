"""Two Sanic workers, as deployed: /metrics sums both, and SIGTERM under load loses no
session that got a 2xx."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.signals import metric, wait_until
from tests.test_writer import post_all


def processes_that_ingested(metrics_dir: Path) -> set[str]:
    """The pids whose own sample file counts ingested sessions."""
    pids = set()
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if '"sessions_ingested_total"' in key and value > 0:
                pids.add(re.search(r"_(\d+)\.db$", path.name).group(1))
    return pids


def test_metrics_are_summed_over_both_workers(database_url, db, tmp_path):
    metrics_dir = tmp_path / "metrics"
    env = server_env(database_url, M3W_METRICS_DIR=str(metrics_dir))
    responses: list[httpx.Response] = []
    with RunningServer(env, tmp_path / "server.log", workers=2) as server:
        # Which worker accepts a connection is the kernel's choice: send until both have
        # ingested (their own sample files say so), however many that takes.
        def both_workers_ingested() -> bool:
            responses.extend(asyncio.run(post_all(server.url, [payload_a() for _ in range(20)])))
            return len(processes_that_ingested(metrics_dir)) == 2

        wait_until(both_workers_ingested, "requests reaching both workers")
        asyncio.run(post_all(server.url, [payload_a(sessionId="") for _ in range(4)]))
        scrapes = [httpx.get(server.url + "/metrics").text for _ in range(6)]

    sent = len(responses)
    assert [r.status_code for r in responses] == [200] * sent
    for scrape in scrapes:  # whichever worker answers the scrape
        assert metric(scrape, "sessions_ingested_total") == sent
        assert metric(scrape, 'sessions_rejected_total{reason="invalid_schema"}') == 4
        assert (
            metric(
                scrape,
                'http_request_duration_seconds_count{method="POST",route="/v1/sessions",status="200"}',
            )
            == sent
        )
        assert metric(scrape, "ingest_batch_size_sum") == sent
        assert metric(scrape, "ingest_queue_depth") == 0
    assert db.count() == sent


async def load_until_refused(url: str, acknowledged: list[str], stop_after: float) -> None:
    """Post unique sessions from 32 concurrent clients until the server stops answering."""
    deadline = time.monotonic() + stop_after

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            body = payload_a()
            try:
                response = await client.post("/v1/sessions", json=body)
            except httpx.HTTPError:
                return  # connection refused or reset: the server is going away
            if 200 <= response.status_code < 300:
                acknowledged.append(body["sessionId"])

    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": TEST_API_KEY}, timeout=10
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(32)))


def test_sigterm_under_load_loses_no_acknowledged_session(database_url, db, tmp_path):
    # Long batch windows, so that rows are always waiting in the queue when SIGTERM lands.
    env = server_env(database_url, GRACEFUL_SHUTDOWN_TIMEOUT="10", M3W_BATCH_WINDOW_MS="200")
    server = RunningServer(env, tmp_path / "server.log", workers=2)
    acknowledged: list[str] = []

    async def scenario() -> None:
        load = asyncio.create_task(load_until_refused(server.url, acknowledged, stop_after=60))
        while len(acknowledged) < 200:  # under load, by what the clients were answered
            assert not load.done(), "the load stopped before it got going"
            await asyncio.sleep(0.01)
        # Raises if the processes are still there a few seconds past the grace period.
        exit_code = await asyncio.to_thread(server.terminate, 10 + 5)
        await load
        assert exit_code == 0, server.log()

    asyncio.run(scenario())

    stored = {r["session_id"] for r in db.query("SELECT session_id FROM sessions")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged sessions are not in PostgreSQL"
