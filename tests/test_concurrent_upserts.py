"""Two transactions upserting one sessionId at the same time, from two processes (the test,
through the service's own statement, and a real server): no error, the newest summary wins
whichever commits first.

The overlap is made certain, not hoped for: the test's transaction holds the row, and the
server's statement is seen waiting for it in pg_stat_activity before the test commits."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pugsql
import pytest
from sqlalchemy import create_engine

from service.session_row import to_row
from service.store import QUERIES_DIR
from service.summary import validate_summary
from tests.conftest import TEST_API_KEY
from tests.payloads import payload_a
from tests.signals import wait_for_commits_blocked

OLDER, NEWER = 1_771_149_600_000, 1_771_149_600_000 + 60_000


def post(server, body: dict):
    with server.client(TEST_API_KEY) as client:
        return client.post("/v1/sessions", json=body)


@pytest.mark.parametrize(
    ("held", "posted"),
    [(NEWER, OLDER), (OLDER, NEWER)],
    ids=["newer-commits-first", "older-commits-first"],
)
def test_concurrent_upserts_of_one_session_keep_the_newest(server, db, held, posted):
    session_id = payload_a()["sessionId"]
    mine = payload_a(sessionId=session_id, timestamp=held, contentId=f"t{held}")
    theirs = payload_a(sessionId=session_id, timestamp=posted, contentId=f"t{posted}")
    queries = pugsql.module(str(QUERIES_DIR))
    queries.setengine(create_engine(db.url.sqlalchemy))
    try:
        with ThreadPoolExecutor(1) as pool:
            with queries.transaction():
                row = to_row(validate_summary(mine), json.dumps(mine)).for_tenant(db.tenant())
                assert queries.upsert_sessions(rows=f"[{row.json}]", commit_by=math.inf) == 1
                answer = pool.submit(post, server, theirs)
                wait_for_commits_blocked(db.url)  # the server's upsert waits for this one
            response = answer.result()
    finally:
        queries.engine.dispose()

    assert response.status_code == 200
    stored = db.session(session_id)
    assert stored["timestamp"] == NEWER
    assert stored["content_id"] == f"t{NEWER}"
    assert db.count() == 1
