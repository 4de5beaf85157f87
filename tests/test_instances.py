"""Several instances of the service sharing one PostgreSQL (issue 8, part 3): two real server
processes, each with 2 workers, on one database, as a load balancer would spread a team's
traffic over them.

- Concurrent upserts of the same sessions through both instances end with one row per
  (tenant, sessionId), holding the newest summary.
- A revoked key is refused by every worker of both instances within M3W_KEY_CACHE_SECONDS.
- Rollup refreshes from both instances (and from two more connections) at once lose nothing.
- Each instance's /metrics counts its own sessions only.

Which worker answered is not guessed: each instance has its own M3W_METRICS_DIR, where every
worker process keeps its Prometheus samples in files of its own (counter_<pid>.db), and the
tests read those files one by one.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.config import DatabaseUrl
from tests.conftest import TEST_API_KEY, Database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.signals import metric_or_zero, scrape, wait_until
from tests.tenancy import m3w, new_key, new_tenant

KEY_CACHE_SECONDS = 2
# Past the cache time, room for a lookup that read the key just before the revocation
# committed and filled its worker's cache a moment later, on a loaded machine.
REVOCATION_MARGIN_SECONDS = 1.0
BASE = 1_771_149_600_000  # 2026-02-15T10:00:00Z


class _OneFile:
    """A collector of one worker's sample file (prometheus-client merges them per scrape)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def collect(self):  # type: ignore[no-untyped-def]
        return MultiProcessCollector.merge([str(self._path)], accumulate=True)


@dataclass
class Instance:
    server: RunningServer
    metrics_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def per_worker(self, name: str) -> dict[int, float]:
        """A counter sample (`name{label="value"}`, as tests.signals reads it) for each
        worker process of this instance, by pid."""
        values = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_OneFile(path))
            scrape_text = generate_latest(registry).decode()
            values[int(path.stem.removeprefix("counter_"))] = metric_or_zero(scrape_text, name)
        return values


@dataclass
class Deployment:
    url: DatabaseUrl
    a: Instance
    b: Instance

    @property
    def instances(self) -> tuple[Instance, Instance]:
        return (self.a, self.b)


@pytest.fixture(scope="module")
def deployment(postgres_server, tmp_path_factory) -> Iterator[Deployment]:
    url = migrated_database(postgres_server, "m3w_instances")
    root = tmp_path_factory.mktemp("instances")

    def start(name: str) -> Instance:
        metrics_dir = root / f"metrics-{name}"
        env = server_env(
            url,
            M3W_KEY_CACHE_SECONDS=str(KEY_CACHE_SECONDS),
            M3W_ROLLUP_REFRESH_SECONDS="1",
            M3W_METRICS_DIR=str(metrics_dir),
        )
        return Instance(RunningServer(env, root / f"{name}.log", workers=2), metrics_dir)

    started: list[Instance] = []
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: half the wait
            starting = [pool.submit(start, name) for name in ("a", "b")]
        started = [f.result() for f in starting if f.exception() is None]
        for future in starting:
            future.result()  # an instance that did not start fails the tests here
        for instance in started:
            # The worker processes, each with its own sample files: what the tests rely on.
            assert len(instance.per_worker("database_errors_total")) == 2, instance.server.log()
        yield Deployment(url, *started)
    finally:
        for instance in started:
            instance.server.terminate()


def session(session_id: str, version: int, tenant: int) -> dict:
    """Version `version` of a session: a later timestamp and a content id that says which."""
    return payload_a(
        sessionId=session_id, timestamp=BASE + version * 1000, contentId=f"t{tenant}-v{version}"
    )


def test_concurrent_upserts_through_both_instances_keep_one_newest_row_each(deployment):
    url = deployment.url
    slug = new_tenant(url, "multi")
    keys = (TEST_API_KEY, new_key(url, slug))  # two tenants sending the same session ids
    ids = [str(uuid.uuid4()) for _ in range(12)]
    versions = 6
    posts = [(t, sid, v) for t in (0, 1) for sid in ids for v in range(versions)]
    random.Random(8).shuffle(posts)
    threads = 8

    def send(share: list[tuple[int, str, int]], first: int) -> list[int]:
        """Singles and batches of the share, alternately through one instance and the
        other, on this thread's own keep-alive connections."""
        statuses = []
        with deployment.a.server.client() as a, deployment.b.server.client() as b:
            for n, start in enumerate(range(0, len(share), 3)):
                client = (a, b)[(n + first) % 2]
                chunk = share[start : start + 3]
                if n % 2:
                    for tenant in (0, 1):  # a batch carries one key: one per tenant
                        items = [session(sid, v, t) for t, sid, v in chunk if t == tenant]
                        if items:
                            answer = client.post(
                                "/v1/sessions/batch",
                                json=items,
                                headers={"X-API-Key": keys[tenant]},
                            )
                            ok = answer.status_code == 200 and answer.json()["status"] == "success"
                            statuses.append(200 if ok else answer.status_code)
                else:
                    for t, sid, v in chunk:
                        answer = client.post(
                            "/v1/sessions", json=session(sid, v, t), headers={"X-API-Key": keys[t]}
                        )
                        statuses.append(answer.status_code)
        return statuses

    with ThreadPoolExecutor(threads) as pool:
        shares = [posts[i::threads] for i in range(threads)]
        answers = [s for done in pool.map(send, shares, range(threads)) for s in done]
    assert answers and set(answers) == {200}

    # Then a stale retry of the oldest version of every session, through each instance:
    # answered 200 and changes nothing (whichever order the concurrent phase committed in).
    for instance in deployment.instances:
        with instance.server.client() as client:
            for tenant in (0, 1):
                stale = [session(sid, 0, tenant) for sid in ids]
                answer = client.post(
                    "/v1/sessions/batch", json=stale, headers={"X-API-Key": keys[tenant]}
                )
                assert answer.status_code == 200, answer.text

    rows = Database(url).query(
        "SELECT t.slug, s.session_id, s.timestamp, s.content_id FROM sessions AS s "
        "JOIN tenants AS t ON t.id = s.tenant_id WHERE s.session_id = ANY(%s)",
        ids,
    )
    assert len(rows) == 2 * len(ids)
    tenant_of = {"default": 0, slug: 1}
    newest = BASE + (versions - 1) * 1000
    assert {(r["slug"], r["session_id"]) for r in rows} == {
        (s, sid) for s in tenant_of for sid in ids
    }
    for row in rows:
        assert row["timestamp"] == newest, row
        assert row["content_id"] == f"t{tenant_of[row['slug']]}-v{versions - 1}", row


@dataclass
class _Answer:
    sent_at: float
    instance: str
    status: int


def test_a_revoked_key_is_refused_by_every_worker_of_both_instances_within_the_cache_time(
    deployment,
):
    url = deployment.url
    slug = new_tenant(url, "revoke")
    key = new_key(url, slug)
    (key_id,) = [
        row["id"]
        for row in Database(url).query(
            "SELECT k.id FROM api_keys AS k JOIN tenants AS t ON t.id = k.tenant_id "
            "WHERE t.slug = %s",
            slug,
        )
    ]
    accepted = f'sessions_ingested_total{{tenant="{slug}"}}'
    refused = 'sessions_rejected_total{reason="invalid_api_key"}'
    refused_before = {i.url: i.per_worker(refused) for i in deployment.instances}

    # Steady traffic with the key to both instances, each request on a connection of its
    # own so that the workers share it, from before the revocation until after the test.
    answers: list[_Answer] = []
    stop = threading.Event()

    def traffic(first: int) -> None:
        n = first
        while not stop.is_set():
            instance = deployment.instances[n % 2]
            n += 1
            sent_at = time.monotonic()
            try:
                status = httpx.post(
                    instance.url + "/v1/sessions",
                    json=payload_a(),
                    headers={"X-API-Key": key},
                    timeout=30,
                ).status_code
            except httpx.HTTPError:
                status = 0  # fails the checks below: every request must get an answer
            answers.append(_Answer(sent_at, instance.url, status))

    senders = [threading.Thread(target=traffic, args=(n,), daemon=True) for n in range(2)]
    for sender in senders:
        sender.start()
    try:
        # Every worker of both instances has the key in its cache (accepted it lately).
        for instance in deployment.instances:
            wait_until(
                lambda i=instance: all(v > 0 for v in i.per_worker(accepted).values()),
                f"every worker of {instance.url} accepted the key",
            )
        revoking = time.monotonic()
        done = m3w(url, "keys", "revoke", str(key_id))
        revoked = time.monotonic()
        assert done.returncode == 0, done.stderr

        # Every worker of both instances refuses it: bounded by the cache time (with room
        # on a loaded machine), never waiting for a worker's cache to be evicted otherwise.
        for instance in deployment.instances:
            wait_until(
                lambda i=instance: _each_counted_more(i.per_worker(refused), refused_before[i.url]),
                f"every worker of {instance.url} refused the revoked key",
                timeout=KEY_CACHE_SECONDS + 10,
            )
        # ... and keeps refusing it: some requests of each instance sent past the cache
        # time are in (all of them checked below).
        expired = revoked + KEY_CACHE_SECONDS + REVOCATION_MARGIN_SECONDS
        wait_until(
            lambda: (
                {a.instance for a in list(answers) if a.sent_at > expired}
                == {i.url for i in deployment.instances}
            ),
            "answers to requests sent after the cache time, from both instances",
        )
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)

    before = [a for a in answers if a.sent_at < revoking]
    after = [a for a in answers if a.sent_at > expired]
    assert before and {a.status for a in before} == {200}
    assert after and {a.status for a in after} == {401}, [
        (round(a.sent_at - revoked, 2), a.instance, a.status) for a in after if a.status != 401
    ]


def _each_counted_more(now: dict[int, float], before: dict[int, float]) -> bool:
    return bool(now) and all(value > before.get(pid, 0) for pid, value in now.items())


def test_rollup_refreshes_from_both_instances_at_once_lose_nothing(deployment):
    """Both instances refresh every second (all four workers try; the advisory lock lets one
    at a time), and two more connections call refresh_qoe_rollups() in a loop, while sessions
    spread over many hours arrive through both instances. Once no hour is dirty, the rollups
    are exactly what counting `sessions` gives."""
    url = deployment.url
    stop = threading.Event()
    refreshed: list[int] = []

    def refresh_in_a_loop() -> None:
        with psycopg.connect(url.libpq, autocommit=True) as conn:
            while not stop.is_set():
                refreshed.append(conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0])

    def send(share: list[int], first: int) -> list[int]:
        statuses = []
        with (
            deployment.a.server.client(TEST_API_KEY) as a,
            deployment.b.server.client(TEST_API_KEY) as b,
        ):
            for n, minute in enumerate(share):
                body = payload_a(
                    timestamp=BASE + minute * 60_000,
                    rebufferTimeMs=minute,
                    contentId=f"c{minute % 5}",
                )
                statuses.append((a, b)[(n + first) % 2].post("/v1/sessions", json=body).status_code)
        return statuses

    refreshers = [threading.Thread(target=refresh_in_a_loop, daemon=True) for _ in range(2)]
    for refresher in refreshers:
        refresher.start()
    try:
        minutes = list(range(0, 36 * 60, 7))  # every 7 minutes over a day and a half
        with ThreadPoolExecutor(4) as pool:
            shares = [minutes[i::4] for i in range(4)]
            answers = [s for done in pool.map(send, shares, range(4)) for s in done]
    finally:
        stop.set()
        for refresher in refreshers:
            refresher.join(timeout=30)
    assert refreshed  # the loops did run beside the instances' own refreshes
    # Some more after the loops stopped: only the instances' own refresh can take them.
    answers += send(list(range(36 * 60, 40 * 60, 11)), 0)
    assert set(answers) == {200}

    database = Database(url)
    # The instances' own refresh (every second) takes what is left dirty.
    wait_until(
        lambda: database.query("SELECT count(*) AS n FROM qoe_rollup_dirty_hours")[0]["n"] == 0,
        "no dirty hour left",
    )
    hourly = database.query(
        """
        WITH rolled AS (
            SELECT hour, tenant_id, sum(sessions) AS sessions,
                   sum(rebuffer_ms_sum) AS rebuffer_ms
            FROM qoe_hourly_rollup GROUP BY 1, 2),
        counted AS (
            SELECT date_trunc('hour', ended_at, 'UTC') AS hour, tenant_id,
                   count(*) AS sessions, sum(coalesce(rebuffer_time_ms, 0)) AS rebuffer_ms
            FROM sessions GROUP BY 1, 2)
        SELECT hour, tenant_id, r.sessions AS rolled, c.sessions AS counted,
               r.rebuffer_ms AS rolled_ms, c.rebuffer_ms AS counted_ms
        FROM rolled AS r FULL JOIN counted AS c USING (hour, tenant_id)
        """
    )
    assert len(hourly) >= 36
    assert [
        h for h in hourly if (h["rolled"], h["rolled_ms"]) != (h["counted"], h["counted_ms"])
    ] == []
    daily = database.query(
        """
        WITH rolled AS (
            SELECT day, tenant_id, sum(sessions) AS sessions FROM qoe_daily_breakdown_rollup
            WHERE dimension = 'content_id' GROUP BY 1, 2),
        counted AS (
            SELECT date_trunc('day', ended_at, 'UTC') AS day, tenant_id, count(*) AS sessions
            FROM sessions GROUP BY 1, 2)
        SELECT day, tenant_id, r.sessions AS rolled, c.sessions AS counted
        FROM rolled AS r FULL JOIN counted AS c USING (day, tenant_id)
        """
    )
    assert len(daily) >= 2
    assert [d for d in daily if d["rolled"] != d["counted"]] == []
    # Refreshes that met one another did not fail either (one at a time, by the lock).
    for instance in deployment.instances:
        assert "rollup refresh failed" not in instance.server.log()


def test_each_instance_counts_only_its_own_sessions(deployment):
    url = deployment.url
    slug = new_tenant(url, "metrics")
    key = new_key(url, slug)
    sent = {deployment.a.url: 3, deployment.b.url: 5}
    for instance in deployment.instances:
        with instance.server.client(key) as client:
            for _ in range(sent[instance.url]):
                assert client.post("/v1/sessions", json=payload_a()).status_code == 200

    name = f'sessions_ingested_total{{tenant="{slug}"}}'
    counted = {i.url: metric_or_zero(scrape(i.url), name) for i in deployment.instances}
    assert counted == sent  # each its own, not the deployment's
    rows = Database(url).query(
        "SELECT count(*) AS n FROM sessions JOIN tenants ON tenants.id = tenant_id WHERE slug = %s",
        slug,
    )[0]["n"]
    assert sum(counted.values()) == rows == 8  # what Prometheus sums over the instances
