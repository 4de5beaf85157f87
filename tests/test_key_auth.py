"""Tenants and their API keys through real servers, checked against the rows: each key writes
as its tenant, revoked and expired keys are refused on every worker within the cache time,
M3W_API_KEY and dev-key keep working as before, and no key is kept anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from service.config import DatabaseUrl
from service.embedded_db import POSTGRES_BIN_PATH
from tests.conftest import TEST_API_KEY, Database, migrated_database, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer, TcpProxy
from tests.signals import metric, metric_or_zero, scrape, wait_until
from tests.tenancy import m3w, new_key, new_tenant

# Small, so that a revoked key is refused soon; the tests still wait for the answer itself.
CACHE_SECONDS = 1


@pytest.fixture(scope="module")
def tenancy_db(postgres_server: DatabaseUrl) -> DatabaseUrl:
    return migrated_database(postgres_server, "m3w_tenancy")


@pytest.fixture(scope="module")
def tenants_server(tenancy_db, tmp_path_factory):
    """Two workers, as deployed: each has its own key cache."""
    log = tmp_path_factory.mktemp("tenancy") / "server.log"
    env = server_env(tenancy_db, M3W_KEY_CACHE_SECONDS=str(CACHE_SECONDS))
    with RunningServer(env, log, workers=2) as server:
        yield server


def post(server: RunningServer, key: str, body: Any, path: str = "/v1/sessions") -> httpx.Response:
    # A new connection each time: the kernel spreads them over the workers.
    return httpx.post(server.url + path, json=body, headers={"X-API-Key": key}, timeout=30)


def stored(url: DatabaseUrl, session_id: str) -> list[tuple[str, str | None]]:
    """(tenant slug, content_id) of every row with this session id."""
    rows = Database(url).query(
        "SELECT t.slug, s.content_id FROM sessions AS s JOIN tenants AS t ON t.id = s.tenant_id "
        "WHERE s.session_id = %s ORDER BY t.slug",
        session_id,
    )
    return [(r["slug"], r["content_id"]) for r in rows]


def key_row(url: DatabaseUrl, key: str) -> dict:
    [row] = Database(url).query(
        "SELECT id, last_used_at FROM api_keys WHERE key_hash = sha256(%s)", key.encode()
    )
    return row


def test_one_session_id_from_two_tenants_is_two_sessions(tenancy_db, tenants_server):
    a, b = new_tenant(tenancy_db), new_tenant(tenancy_db)
    key_a, key_b = new_key(tenancy_db, a), new_key(tenancy_db, b)
    session_id = str(uuid.uuid4())
    # The payload cannot choose its tenant: such keys are only kept in the payload.
    from_a = payload_a(sessionId=session_id, contentId="from-a", tenant_id=1, tenant=b)
    from_b = payload_a(sessionId=session_id, contentId="from-b")

    assert post(tenants_server, key_a, from_a).status_code == 200
    batch = post(tenants_server, key_b, [from_b], "/v1/sessions/batch")
    assert batch.json()["status"] == "success"
    valid = post(tenants_server, key_b, payload_a(sessionId=session_id), "/v1/sessions/validate")
    assert valid.json() == {"status": "valid", "sessionId": session_id}

    assert stored(tenancy_db, session_id) == sorted([(a, "from-a"), (b, "from-b")])

    # A newer summary updates its own tenant's row only.
    newer = dict(from_a, timestamp=from_a["timestamp"] + 1000, contentId="a-again")
    assert post(tenants_server, key_a, newer).status_code == 200
    assert stored(tenancy_db, session_id) == sorted([(a, "a-again"), (b, "from-b")])


def test_m3w_api_key_still_writes_as_tenant_default(tenancy_db, tenants_server):
    body = payload_a()

    for path, sent in [("/v1/sessions", body), ("/v1/sessions/batch", [payload_a()])]:
        assert post(tenants_server, TEST_API_KEY, sent, path).status_code == 200

    assert stored(tenancy_db, body["sessionId"]) == [("default", None)]


def test_a_revoked_key_is_refused_on_every_worker_within_the_cache_time(tenancy_db, tenants_server):
    slug = new_tenant(tenancy_db)
    key = new_key(tenancy_db, slug)
    assert post(tenants_server, key, payload_a()).status_code == 200  # now cached

    revoked = m3w(tenancy_db, "keys", "revoke", str(key_row(tenancy_db, key)["id"]))
    assert revoked.returncode == 0, revoked.stderr

    wait_until(
        lambda: post(tenants_server, key, payload_a(), "/v1/sessions/validate").status_code == 401,
        "the revoked key refused",
    )
    refused = [payload_a() for _ in range(20)]  # on new connections: every worker answers
    answers = [post(tenants_server, key, body) for body in refused]
    assert {a.status_code for a in answers} == {401}
    assert {a.json()["error"]["code"] for a in answers} == {"INVALID_API_KEY"}
    assert all(stored(tenancy_db, body["sessionId"]) == [] for body in refused)


def test_an_expired_key_is_refused_though_the_cache_time_is_longer(tenancy_db, tmp_path):
    slug = new_tenant(tenancy_db)
    key = new_key(tenancy_db, slug, "--expires-in", "1")
    env = server_env(tenancy_db, M3W_KEY_CACHE_SECONDS="3600")
    with RunningServer(env, tmp_path / "server.log") as server:
        # A day is too long to wait for: the key's expiry is brought forward to seconds,
        # enough for the one request below on a loaded machine, well inside wait_until's 30 s.
        Database(tenancy_db).query(
            "UPDATE api_keys SET expires_at = now() + interval '10 seconds' "
            "WHERE key_hash = sha256(%s) RETURNING id",
            key.encode(),
        )
        assert post(server, key, payload_a()).status_code == 200  # cached, until it expires

        wait_until(
            lambda: post(server, key, payload_a(), "/v1/sessions/validate").status_code == 401,
            "the expired key refused",
        )
        body = payload_a()
        assert post(server, key, body).json()["error"]["code"] == "INVALID_API_KEY"
    assert stored(tenancy_db, body["sessionId"]) == []
    listed = m3w(tenancy_db, "keys", "list", "--tenant", slug, "--json")
    assert [k["state"] for k in json.loads(listed.stdout)] == ["expired"]


def test_database_down_on_an_uncached_key_is_a_503_never_a_401(tenancy_db, tmp_path):
    slug = new_tenant(tenancy_db)
    cached, uncached = new_key(tenancy_db, slug), new_key(tenancy_db, slug)
    proxy = TcpProxy(tenancy_db.host, tenancy_db.port)
    behind = DatabaseUrl(
        tenancy_db.user, tenancy_db.password, "127.0.0.1", proxy.port, tenancy_db.database
    )
    env = server_env(behind, M3W_KEY_CACHE_SECONDS="3600", M3W_DB_TIMEOUT_SECONDS="2")
    try:
        with RunningServer(env, tmp_path / "server.log") as server:
            validate = "/v1/sessions/validate"  # touches the database only for the key
            assert post(server, cached, payload_a(), validate).status_code == 200

            proxy.cut()
            try:
                # A cached key needs no database; a text without a key's shape neither.
                assert post(server, cached, payload_a(), validate).status_code == 200
                assert post(server, "not-a-key", payload_a(), validate).status_code == 401
                # A key that may exist, but cannot be looked up: retry later, not "bad key".
                unknown = "m3w_" + "A" * 43
                for key, path in [(uncached, validate), (uncached, "/v1/sessions"),
                                  (unknown, validate)]:  # fmt: skip
                    answer = post(server, key, payload_a(), path)
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["error"]["code"] == "DATABASE_ERROR"
                    assert int(answer.headers["Retry-After"]) > 0
                scraped = scrape(server.url)
            finally:
                proxy.restore()

            wait_until(
                lambda: post(server, uncached, payload_a(), validate).status_code == 200,
                "the key looked up once the database is back",
            )
            assert post(server, unknown, payload_a(), validate).status_code == 401
    finally:
        proxy.close()
    assert metric(scraped, 'sessions_rejected_total{reason="database_error",tenant=""}') == 1


def test_sessions_are_counted_per_tenant(tenancy_db, tenants_server):
    slug = new_tenant(tenancy_db)
    key = new_key(tenancy_db, slug)
    before = scrape(tenants_server.url)

    answers = [
        post(tenants_server, key, payload_a()),
        post(tenants_server, key, payload_a()),
        post(tenants_server, key, payload_a(sessionId="")),
        post(tenants_server, key, [payload_a(), payload_a(sessionId="")], "/v1/sessions/batch"),
        post(tenants_server, TEST_API_KEY, payload_a()),
        post(tenants_server, "m3w_" + "B" * 43, payload_a()),
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 200, 200, 401]
    after = scrape(tenants_server.url)

    def grew(name: str) -> float:
        return metric_or_zero(after, name) - metric_or_zero(before, name)

    assert metric(after, f'sessions_ingested_total{{tenant="{slug}"}}') == 3
    assert metric(after, f'sessions_rejected_total{{reason="invalid_schema",tenant="{slug}"}}') == 2
    assert grew('sessions_ingested_total{tenant="default"}') == 1
    # Refused before its key named a tenant: the empty label.
    assert grew('sessions_rejected_total{reason="invalid_api_key",tenant=""}') == 1


def test_no_key_material_is_stored_logged_or_exported(tenancy_db, tenants_server):
    slug = new_tenant(tenancy_db)
    created = m3w(tenancy_db, "keys", "create", "--tenant", slug, "--name", "leak check")
    key = created.stdout.strip()
    secret = key.removeprefix("m3w_")
    assert post(tenants_server, key, payload_a()).status_code == 200
    assert post(tenants_server, key + "x", payload_a()).status_code == 401
    assert post(tenants_server, key, [payload_a()], "/v1/sessions/batch").status_code == 200
    outputs = [
        created.stderr,
        m3w(tenancy_db, "keys", "list").stdout,
        m3w(tenancy_db, "keys", "list", "--json").stdout,
        m3w(tenancy_db, "keys", "revoke", str(key_row(tenancy_db, key)["id"])).stdout,
        scrape(tenants_server.url),
        tenants_server.log(),
    ]
    dump = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_dump"), "--no-owner", "--dbname", tenancy_db.libpq],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    ).stdout

    # The dump holds the key's row (its hash), never the key.
    assert hashlib.sha256(key.encode()).hexdigest() in dump
    for text in [dump, *outputs]:
        assert secret not in text
        assert secret[:20] not in text


def test_key_use_is_recorded_off_the_request_path_at_most_once_a_minute(tenancy_db, tmp_path):
    slug = new_tenant(tenancy_db)
    key = new_key(tenancy_db, slug)
    env = server_env(tenancy_db)

    with RunningServer(env, tmp_path / "first.log") as server:
        assert [post(server, key, payload_a()).status_code for _ in range(3)] == [200] * 3
        # Answered without writing the key's row: that happens once a minute, or at the stop.
        assert key_row(tenancy_db, key)["last_used_at"] is None
    first_use = key_row(tenancy_db, key)["last_used_at"]
    assert first_use is not None

    with RunningServer(env, tmp_path / "second.log") as server:
        assert post(server, key, payload_a()).status_code == 200
    # Written less than a minute ago: not again, whichever worker or instance asks.
    assert key_row(tenancy_db, key)["last_used_at"] == first_use


def test_dev_key_works_only_until_the_first_key_is_created(postgres_server, tmp_path, monkeypatch):
    url = migrated_database(postgres_server, "m3w_dev_key")
    monkeypatch.delenv("M3W_API_KEY", raising=False)  # unset, as on a first `make run`
    env = {"DATABASE_URL": url.libpq, "M3W_KEY_CACHE_SECONDS": str(CACHE_SECONDS)}
    with RunningServer(env, tmp_path / "server.log") as server:
        first = payload_a()
        assert post(server, "dev-key", first).status_code == 200
        assert stored(url, first["sessionId"]) == [("default", None)]

        slug = new_tenant(url)
        key = new_key(url, slug)
        wait_until(lambda: post(server, "dev-key", payload_a()).status_code == 401, "dev-key off")
        assert post(server, key, payload_a()).status_code == 200

        # Revoking every key does not bring the public key back.
        assert m3w(url, "keys", "revoke", str(key_row(url, key)["id"])).returncode == 0
        wait_until(lambda: post(server, key, payload_a()).status_code == 401, "key revoked")
        refused = post(server, "dev-key", payload_a())
        assert refused.status_code == 401
        assert "m3w keys create" in refused.json()["error"]["message"]
