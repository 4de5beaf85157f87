"""Per-API-key rate limits (service/rate_limit.py), through real servers on one PostgreSQL:
the limit holds for the whole deployment (two instances of two workers each), answers carry
X-RateLimit-*, a refusal is 429 RATE_LIMITED with Retry-After, the next window admits again,
and a database outage never turns into 429s."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from service.config import DatabaseUrl
from service.keys import display_prefix, key_hash, new_key
from tests.conftest import TEST_API_KEY, Database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer, TcpProxy
from tests.signals import metric_or_zero, scrape, wait_until
from tests.tenancy import m3w, new_tenant

LONG_WINDOW = 3600  # the tests that count stay inside one window of this
SHORT_WINDOW = 2  # the tests that need the next window
GLOBAL_LIMIT = 30  # RATE_LIMIT_REQUESTS of the two instances
SPREAD_LIMIT = 50  # a key's own limit, above the global one
VALIDATE = "/v1/sessions/validate"
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture(scope="module")
def limits_db(postgres_server: DatabaseUrl) -> DatabaseUrl:
    """A database of this module's own: its keys and counts touch no other test."""
    return migrated_database(postgres_server, "m3w_rate_limit")


@pytest.fixture(scope="module")
def long_window() -> None:
    """Windows are aligned to the epoch (README): start the counting tests well inside one,
    so that none of them straddles two (each also checks that its answers name one window)."""
    wait_until(lambda: LONG_WINDOW - time.time() % LONG_WINDOW > 90, "90 s left", timeout=100)


@pytest.fixture(scope="module")
def two_instances(limits_db, long_window, tmp_path_factory):
    """Two instances of two workers each on one database, RATE_LIMIT_REQUESTS set."""
    logs = tmp_path_factory.mktemp("rate-limit-pair")
    env = server_env(
        limits_db,
        RATE_LIMIT_REQUESTS=str(GLOBAL_LIMIT),
        RATE_LIMIT_WINDOW_SEC=str(LONG_WINDOW),
        M3W_ROLLUP_REFRESH_SECONDS="0",
    )
    with (
        RunningServer(env, logs / "a.log", workers=2) as first,
        RunningServer(env, logs / "b.log", workers=2) as second,
    ):
        yield first, second


@pytest.fixture(scope="module")
def one_worker(limits_db, long_window, tmp_path_factory):
    """One worker, no global limit (the default), keys learnt again every second (so that
    `m3w keys update` shows within a test)."""
    env = server_env(
        limits_db,
        RATE_LIMIT_WINDOW_SEC=str(LONG_WINDOW),
        M3W_KEY_CACHE_SECONDS="1",
        M3W_ROLLUP_REFRESH_SECONDS="0",
    )
    with RunningServer(env, tmp_path_factory.mktemp("rate-limit-one") / "server.log") as server:
        yield server


@pytest.fixture(scope="module")
def proxy(limits_db):
    proxy = TcpProxy(limits_db.host, limits_db.port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def short_window(limits_db, proxy, tmp_path_factory):
    """One worker whose PostgreSQL can be cut off, with windows of SHORT_WINDOW seconds."""
    behind = DatabaseUrl(
        limits_db.user, limits_db.password, "127.0.0.1", proxy.port, limits_db.database
    )
    env = server_env(
        behind,
        RATE_LIMIT_WINDOW_SEC=str(SHORT_WINDOW),
        M3W_DB_TIMEOUT_SECONDS="2",
        M3W_ROLLUP_REFRESH_SECONDS="0",
    )
    with RunningServer(env, tmp_path_factory.mktemp("rate-limit-short") / "server.log") as server:
        yield server


def limited_key(url: DatabaseUrl, prefix: str, rate_limit: int | None = None) -> tuple[str, str]:
    """A new tenant with one key (limit None: RATE_LIMIT_REQUESTS), straight into the tables
    as `m3w keys create --rate-limit` stores them (quicker than the CLI, which its own tests
    below run): (tenant slug, key)."""
    tenant, key = f"{prefix}-{uuid.uuid4().hex[:8]}", new_key()
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute(
            "WITH t AS (INSERT INTO tenants (slug, name) VALUES (%s, %s) RETURNING id) "
            "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, rate_limit) "
            "SELECT id, '', %s, %s, %s FROM t",
            (tenant, tenant, display_prefix(key), key_hash(key.encode()), rate_limit),
        )
    return tenant, key


def post(url: str, key: str, path: str = VALIDATE, body: Any = None) -> httpx.Response:
    return httpx.post(
        url + path,
        json=payload_a() if body is None else body,
        headers={"X-API-Key": key},
        timeout=30,
    )


def cached_limited_key(
    url: DatabaseUrl, server: RunningServer, prefix: str, limit: int
) -> tuple[str, httpx.Response]:
    """A new key limited to `limit`, and the answer to its first request: the worker has the
    key in its cache, so it needs no lookup while PostgreSQL is cut off or hung."""
    key = limited_key(url, prefix, limit)[1]
    first = post(server.url, key)
    assert first.status_code == 200
    return key, first


def in_the_next_window(
    url: str, key: str, answers: list[httpx.Response], count: int
) -> list[httpx.Response]:
    """`count` requests of `key`, sent once the window named by `answers` has ended."""
    reset = max(int(response.headers["X-RateLimit-Reset"]) for response in answers)
    wait_until(lambda: time.time() >= reset, "the next window")
    return [post(url, key) for _ in range(count)]


def set_limit(url: DatabaseUrl, ident: int, limit: int | None) -> None:
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET rate_limit = %s WHERE id = %s", (limit, ident))


def key_id(url: DatabaseUrl, tenant: str) -> int:
    return Database(url).query(
        "SELECT k.id FROM api_keys AS k JOIN tenants AS t ON t.id = k.tenant_id WHERE t.slug = %s",
        tenant,
    )[0]["id"]


def rows_of(url: DatabaseUrl, tenant: str) -> int:
    return Database(url).query(
        "SELECT count(*) AS n FROM sessions JOIN tenants ON tenants.id = sessions.tenant_id "
        "WHERE tenants.slug = %s",
        tenant,
    )[0]["n"]


def refused(scraped: str, tenant: str) -> float:
    return metric_or_zero(
        scraped, f'sessions_rejected_total{{reason="rate_limited",tenant="{tenant}"}}'
    )


def assert_limited_answer(response: httpx.Response, limit: int) -> None:
    """An answer to a limited key: X-RateLimit-* always; a refusal is our 429."""
    assert int(response.headers["X-RateLimit-Limit"]) == limit
    assert 0 <= int(response.headers["X-RateLimit-Remaining"]) <= limit
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 5
    if response.status_code == 429:
        error = response.json()["error"]
        assert error["code"] == "RATE_LIMITED"
        assert {"message", "timestamp"} <= error.keys()
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(response.headers["Retry-After"]) <= LONG_WINDOW
    else:
        assert "Retry-After" not in response.headers


def send_spread(servers: list[RunningServer], key: str, count: int, path: str) -> list:
    """`count` requests, alternating between the instances, 8 at a time (several
    connections each, so every worker gets some)."""
    clients = [s.client(key) for s in servers]
    try:

        def one(number: int) -> tuple[int, httpx.Response]:
            instance = number % len(clients)
            return instance, clients[instance].post(path, json=payload_a())

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for client in clients:
            client.close()


def test_a_key_gets_its_limit_across_two_instances_of_two_workers(limits_db, two_instances):
    """4 x the key's own limit (above RATE_LIMIT_REQUESTS: the key's own wins), spread over
    both instances: one limit for all four workers, not one each."""
    tenant, key = limited_key(limits_db, "spread", SPREAD_LIMIT)

    answers = send_spread(list(two_instances), key, 4 * SPREAD_LIMIT, "/v1/sessions")

    statuses = [r.status_code for _, r in answers]
    accepted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert 0.8 * SPREAD_LIMIT <= accepted <= 1.2 * SPREAD_LIMIT, accepted
    for _, response in answers:
        assert_limited_answer(response, SPREAD_LIMIT)
    assert len({r.headers["X-RateLimit-Reset"] for _, r in answers}) == 1  # one window
    # A refusal writes nothing, and is counted (each instance counts its own).
    assert rows_of(limits_db, tenant) == accepted
    counted = sum(refused(scrape(s.url), tenant) for s in two_instances)
    assert counted == statuses.count(429)


@pytest.mark.parametrize(
    ("case", "own_limit", "limit"),
    [
        ("no --rate-limit: RATE_LIMIT_REQUESTS", "default", GLOBAL_LIMIT),
        ("--rate-limit 0: unlimited", 0, None),
        ("M3W_API_KEY: RATE_LIMIT_REQUESTS", None, GLOBAL_LIMIT),
    ],
)
def test_which_limit_applies(limits_db, two_instances, case, own_limit, limit):
    if own_limit is None:
        key = TEST_API_KEY
    else:
        key = limited_key(limits_db, "which", None if own_limit == "default" else own_limit)[1]

    answers = [r for _, r in send_spread(list(two_instances), key, 4 * GLOBAL_LIMIT, VALIDATE)]

    accepted = sum(r.status_code == 200 for r in answers)
    if limit is None:
        assert accepted == len(answers), case
        assert not any(h in r.headers for r in answers for h in HEADERS), case
    else:
        assert 0.8 * limit <= accepted <= 1.2 * limit, (case, accepted)
        for response in answers:
            assert_limited_answer(response, limit)


def test_default_off_never_limits(limits_db, one_worker):
    key = limited_key(limits_db, "off")[1]
    with one_worker.client(key) as api:
        answers = [api.post(VALIDATE, json=payload_a()) for _ in range(60)]
        answers.append(api.post("/v1/sessions", json=payload_a()))
    assert {r.status_code for r in answers} == {200}
    assert not any(h in r.headers for r in answers for h in HEADERS)


def test_one_worker_admits_exactly_the_limit_whatever_the_route(limits_db, one_worker):
    """A batch is one request, validate is one, a 400 is one; each answer says so."""
    tenant, key = limited_key(limits_db, "exact", 4)
    with one_worker.client(key) as api:
        batch = api.post("/v1/sessions/batch", json=[payload_a() for _ in range(5)])
        check = api.post(VALIDATE, json=payload_a())
        bad = api.post("/v1/sessions", json=payload_a(sessionId=""))
        single = api.post("/v1/sessions", json=payload_a())
        over = [
            api.post("/v1/sessions", json=payload_a()),
            api.post("/v1/sessions/batch", json=[payload_a() for _ in range(5)]),
            api.post(VALIDATE, json=payload_a()),
        ]
        scraped = scrape(one_worker.url)

    assert [batch.status_code, check.status_code, bad.status_code, single.status_code] == [
        200,
        200,
        400,
        200,
    ]
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in (batch, check, bad, single)]
    assert remaining == [3, 2, 1, 0]
    assert [r.status_code for r in over] == [429, 429, 429]
    for response in [batch, check, bad, single, *over]:
        assert_limited_answer(response, 4)
    assert rows_of(limits_db, tenant) == 5 + 1
    # Validate refusals are not sessions refused: the single and the batch count, once each.
    assert refused(scraped, tenant) == 2


def test_keys_update_reaches_the_running_service(limits_db, one_worker):
    tenant, key = limited_key(limits_db, "update", 2)
    ident = key_id(limits_db, tenant)
    assert [post(one_worker.url, key).status_code for _ in range(3)] == [200, 200, 429]

    set_limit(limits_db, ident, 0)  # as `m3w keys update ID --rate-limit 0`
    # Within M3W_KEY_CACHE_SECONDS (1 s here): then unlimited, no headers.
    opened = wait_until(
        lambda: (r := post(one_worker.url, key)).status_code == 200 and r, "the key unlimited"
    )
    assert not any(h in opened.headers for h in HEADERS)

    set_limit(limits_db, ident, 50)
    raised = wait_until(
        lambda: (r := post(one_worker.url, key)).headers.get("X-RateLimit-Limit") == "50" and r,
        "the new limit applied",
    )
    assert raised.status_code == 200


def test_past_windows_are_deleted_by_the_reconcile(limits_db, one_worker):
    tenant, key = limited_key(limits_db, "stale", 10)
    ident = key_id(limits_db, tenant)
    with psycopg.connect(limits_db.libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO rate_limit_counts (key_id, window_start, worker, admitted, claimed) "
            "VALUES (%s, now() - interval '3 days', gen_random_uuid(), 7, 7)",
            (ident,),
        )

    assert post(one_worker.url, key).status_code == 200

    def windows() -> list[dict]:
        return Database(limits_db).query(
            "SELECT admitted FROM rate_limit_counts WHERE key_id = %s", ident
        )

    # The old row goes; the current window's count (1) is stored, no request wrote it.
    wait_until(lambda: windows() == [{"admitted": 1}], "only the current window's row")


def test_a_limited_key_is_admitted_again_in_the_next_window(limits_db, short_window):
    key = limited_key(limits_db, "next", 3)[1]
    answers = []
    for _ in range(30):  # a window may end meanwhile: that only admits more
        answers.append(post(short_window.url, key))
        if answers[-1].status_code == 429:
            break
    over = answers[-1]
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert over.status_code == 429
    assert_limited_answer(over, 3)
    assert int(over.headers["Retry-After"]) <= SHORT_WINDOW
    reset = int(over.headers["X-RateLimit-Reset"])

    # The server named the moment its window ends: once past it, the key is welcome again.
    wait_until(lambda: time.time() >= reset, "the window the server named has ended")
    again = post(short_window.url, key)

    assert again.status_code == 200
    assert_limited_answer(again, 3)
    assert int(again.headers["X-RateLimit-Reset"]) > reset


def test_a_database_outage_never_turns_into_429s(limits_db, short_window, proxy):
    """PostgreSQL cut off: the worker cannot reconcile, and admits on its own counts (the
    limit per worker, fail open), a fresh window included; one log line says so."""
    limit = 3
    key, first = cached_limited_key(limits_db, short_window, "outage", limit)
    proxy.cut()
    try:
        # A window the worker never reconciled: every request of it still admitted.
        during = in_the_next_window(short_window.url, key, [first], limit)
        wait_until(lambda: "cannot reconcile" in short_window.log(), "the outage logged")
        # Another window still in the outage, after the failure was noticed.
        later = in_the_next_window(short_window.url, key, during, limit)
    finally:
        proxy.restore()

    for response in during + later:
        assert response.status_code == 200
        assert_limited_answer(response, limit)
    assert short_window.log().count("cannot reconcile") == 1
    # Back: the worker reconciles again by itself, at the latest when the key is next used.
    wait_until(
        lambda: (
            post(short_window.url, key)
            and "reconciling with PostgreSQL again" in short_window.log()
        ),
        "reconciling again",
    )


def test_a_hung_database_holds_a_limited_key_for_a_bounded_wait_only(
    limits_db, short_window, proxy
):
    """PostgreSQL hung (connections open, nothing carried, as a frozen server or a
    black-holed network): a request that needs a reconcile waits for it at most
    MAX_WAIT_SECONDS (1 s), then is admitted on the worker's own counts. None is refused,
    and none waits for the database to come back: it comes back only after they are all
    answered."""
    limit = 3
    key, first = cached_limited_key(limits_db, short_window, "hung", limit)
    proxy.freeze()
    try:
        # A window the worker has not reconciled yet: its first request asks PostgreSQL.
        during = in_the_next_window(short_window.url, key, [first], limit)
        reached = proxy.holding.is_set()  # the hung database was asked (the reconciles)
    finally:
        proxy.restore()

    assert reached
    for response in during:
        assert response.status_code == 200
        assert_limited_answer(response, limit)
        # Not a speed check: what bounds the wait. MAX_WAIT_SECONDS is 1 s; without it, a
        # request would wait for the reconcile's own deadline (2 x 2 s + 1 s here).
        assert response.elapsed.total_seconds() < 4


def test_no_key_reaches_the_logs(limits_db, one_worker, short_window):
    key = limited_key(limits_db, "secret", 1)[1]
    for server in (one_worker, short_window):
        for _ in range(2):
            post(server.url, key)
        assert key not in server.log()
        assert key[4:20] not in server.log()


def test_cli_refuses_bad_rate_limits(limits_db):
    tenant = new_tenant(limits_db, "badcli")
    for command, says in (
        (["create", "--tenant", tenant, "--rate-limit", "-1"], "between 0"),
        (["update", "1", "--rate-limit", "lots"], "not a whole number"),
        (["create", "--tenant", tenant, "--rate-limit", "1000000001"], "between 0"),
    ):
        done = m3w(limits_db, "keys", *command)
        assert done.returncode == 2, command
        assert says in done.stderr
        assert done.stdout == ""
    assert not Database(limits_db).query(
        "SELECT FROM api_keys JOIN tenants ON tenants.id = tenant_id WHERE slug = %s", tenant
    )


def test_cli_rate_limit_round_trip(limits_db):
    tenant = new_tenant(limits_db, "cli")
    made = m3w(limits_db, "keys", "create", "--tenant", tenant, "--rate-limit", "5")
    assert made.returncode == 0, made.stderr
    ident = key_id(limits_db, tenant)

    def listed() -> Any:
        done = m3w(limits_db, "keys", "list", "--tenant", tenant, "--json")
        assert done.returncode == 0, done.stderr
        (row,) = json.loads(done.stdout)
        return row["rate_limit"]

    def update(value: str) -> None:
        done = m3w(limits_db, "keys", "update", str(ident), "--rate-limit", value)
        assert done.returncode == 0, done.stderr
        assert f"Key {ident} " in done.stdout

    assert listed() == 5
    update("0")
    table = m3w(limits_db, "keys", "list", "--tenant", tenant).stdout.splitlines()
    assert table[0].endswith("RATE LIMIT  STATE")
    assert table[1].endswith("unlimited   active")
    update("default")
    assert listed() is None

    unknown = m3w(limits_db, "keys", "update", "999999", "--rate-limit", "3")
    assert unknown.returncode == 1
    assert "no API key with id 999999" in unknown.stderr
    missing = m3w(limits_db, "keys", "update", str(ident))
    assert missing.returncode == 2
    stored = Database(limits_db).query("SELECT rate_limit FROM api_keys WHERE id = %s", ident)
    assert stored == [{"rate_limit": None}]
