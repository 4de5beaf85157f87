"""Smart batching through real servers: a lone request commits at once whatever the batch
window, rows that arrive while a commit is in flight wait for it and go together in the
next commit, and the window and a full batch decide when another commit starts beside it.

Nothing here is timed. A lone request is shown not to wait for the window by a window far
longer than its answer deadline (it would be answered 503, not 200); which requests share a
commit is made certain by a table lock holding the commits, and read from /metrics
(ingest_batch_size) and from PostgreSQL (statements waiting on the lock).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer
from tests.signals import (
    metric,
    scrape,
    service_backends,
    sessions_locked,
    wait_for_commits_blocked,
    wait_for_metric,
)
from tests.test_writer import post_in_background

# Far longer than any test here; the answer deadline (2 x timeout + 2 s) is longer still
# where a request may queue behind a held commit.
LONG_WINDOW_MS = "60000"


def blocked_commits(database) -> int:
    return len(service_backends(database, "wait_event_type = 'Lock'"))


def test_a_lone_request_commits_at_once_whatever_the_window(database_url, db, tmp_path):
    # Answered within 2 x 1 + 2 = 4 s: a request waiting for the 60 s window would get a 503.
    env = server_env(database_url, M3W_BATCH_WINDOW_MS=LONG_WINDOW_MS, M3W_DB_TIMEOUT_SECONDS="1")
    bodies = [payload_a() for _ in range(3)]
    with (
        RunningServer(env, tmp_path / "server.log") as server,
        server.client(TEST_API_KEY) as api,
    ):
        for sent, body in enumerate(bodies, start=1):
            response = api.post("/v1/sessions", json=body)
            assert response.status_code == 200, response.text
            scraped = scrape(server.url)
            # One commit of one row per request: none waited for company.
            assert metric(scraped, "ingest_batch_size_count") == sent
            assert metric(scraped, "ingest_batch_size_sum") == sent
    assert db.count() == 3


def held_commits_server(database_url, tmp_path, **env: str) -> RunningServer:
    """Four commit slots, and answer deadlines far beyond what the held lock takes."""
    return RunningServer(
        server_env(database_url, M3W_DB_POOL_SIZE="4", M3W_DB_TIMEOUT_SECONDS="30", **env),
        tmp_path / "server.log",
    )


def test_rows_arriving_during_a_commit_wait_for_it_and_go_together(database_url, db, tmp_path):
    bodies = [payload_a() for _ in range(6)]
    with (
        held_commits_server(database_url, tmp_path, M3W_BATCH_WINDOW_MS=LONG_WINDOW_MS) as server,
        ThreadPoolExecutor(len(bodies) + 1) as pool,
    ):
        with sessions_locked(db.url):
            (first,) = post_in_background(pool, server.url, [payload_a()])
            wait_for_commits_blocked(db.url)
            answers = post_in_background(pool, server.url, bodies)
            # All six queue, though three commit slots are free.
            wait_for_metric(server.url, "ingest_queue_depth", 6)
            held = blocked_commits(db.url)
        assert first.result().status_code == 200
        statuses = [answer.result().status_code for answer in answers]
        scraped = scrape(server.url)

    assert held == 1
    assert statuses == [200] * 6
    assert db.count() == 1 + 6
    assert metric(scraped, "ingest_batch_size_count") == 2  # the held one, then the six
    assert metric(scraped, "ingest_batch_size_sum") == 1 + 6
    assert metric(scraped, "sessions_ingested_total") == 1 + 6


def test_a_full_batch_starts_beside_the_commit_in_flight(database_url, db, tmp_path):
    full, rest = [payload_a() for _ in range(3)], [payload_a() for _ in range(2)]
    with (
        held_commits_server(
            database_url, tmp_path, M3W_BATCH_WINDOW_MS=LONG_WINDOW_MS, M3W_BATCH_MAX_ROWS="3"
        ) as server,
        ThreadPoolExecutor(len(full) + len(rest) + 1) as pool,
    ):
        with sessions_locked(db.url):
            (first,) = post_in_background(pool, server.url, [payload_a()])
            wait_for_commits_blocked(db.url)
            answers = post_in_background(pool, server.url, full)
            wait_for_commits_blocked(db.url, 2)  # the full batch did not wait
            answers += post_in_background(pool, server.url, rest)
            wait_for_metric(server.url, "ingest_queue_depth", 2)  # these two do
            held = blocked_commits(db.url)
        assert first.result().status_code == 200
        statuses = [answer.result().status_code for answer in answers]
        scraped = scrape(server.url)

    assert held == 2
    assert statuses == [200] * 5
    assert db.count() == 1 + 5
    assert metric(scraped, "ingest_batch_size_count") == 3  # 1, then 3, then 2
    assert metric(scraped, "ingest_batch_size_sum") == 1 + 5


def test_without_a_window_rows_take_the_free_slots(database_url, db, tmp_path):
    alone, rest = [payload_a() for _ in range(3)], [payload_a() for _ in range(2)]
    with (
        held_commits_server(database_url, tmp_path, M3W_BATCH_WINDOW_MS="0") as server,
        ThreadPoolExecutor(len(alone) + len(rest) + 1) as pool,
    ):
        with sessions_locked(db.url):
            (first,) = post_in_background(pool, server.url, [payload_a()])
            wait_for_commits_blocked(db.url)
            answers = post_in_background(pool, server.url, alone)
            wait_for_commits_blocked(db.url, 4)  # one commit each, at once
            answers += post_in_background(pool, server.url, rest)
            wait_for_metric(server.url, "ingest_queue_depth", 2)  # no slot left: they wait
            held = blocked_commits(db.url)
        assert first.result().status_code == 200
        statuses = [answer.result().status_code for answer in answers]
        scraped = scrape(server.url)

    assert held == 4
    assert statuses == [200] * 5
    assert db.count() == 1 + 5
    assert metric(scraped, "ingest_batch_size_count") == 4 + 1  # the last two share one
    assert metric(scraped, "ingest_batch_size_sum") == 1 + 5
