"""The service keeps the dashboard rollups fresh by itself (M3W_ROLLUP_REFRESH_SECONDS)."""

from __future__ import annotations

import time

from tests.conftest import TEST_API_KEY, server_env
from tests.payloads import payload_a
from tests.servers import RunningServer


def test_service_refreshes_the_rollups_it_dirtied(database_url, db, tmp_path):
    env = server_env(database_url, M3W_ROLLUP_REFRESH_SECONDS="1")
    with RunningServer(env, tmp_path / "server.log") as server, server.client(TEST_API_KEY) as api:
        for _ in range(5):
            assert api.post("/v1/sessions", json=payload_a()).status_code == 200
        deadline = time.monotonic() + 10
        while db.query("SELECT count(*) AS n FROM qoe_rollup_dirty_hours")[0]["n"]:
            assert time.monotonic() < deadline, "the rollups were never refreshed"
            time.sleep(0.2)

    rolled_up = db.query(
        "SELECT sum(sessions) AS n FROM qoe_hourly_rollup WHERE hour = '2026-02-15T10:00Z'"
    )
    assert rolled_up == [{"n": 5}]
