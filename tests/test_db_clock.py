"""The upsert's deadline, checked by PostgreSQL against its own clock: the mapping of our
clock onto the server's (service/db_clock.py), and the check in the statement itself
(queries/upsert_sessions.sql), which in autocommit leaves nothing behind when it refuses."""

from __future__ import annotations

import json
import math
import time

import psycopg.errors
import pytest
import sqlalchemy.exc

from service.db_clock import DatabaseClock
from service.session_row import to_row
from service.store import queries_module
from service.summary import validate_summary
from tests.payloads import payload_a

SERVER_AHEAD = 1000.0  # seconds between the fake server's clock and our monotonic clock
ROUND_TRIP = 0.02


class FakeServer:
    """A server whose clock reads SERVER_AHEAD past ours, halfway through a round trip."""

    def __init__(self) -> None:
        self.reads = 0

    def read_clock(self) -> float:
        self.reads += 1
        time.sleep(ROUND_TRIP / 2)
        now = time.monotonic() + SERVER_AHEAD
        time.sleep(ROUND_TRIP / 2)
        return now


def test_a_converted_instant_errs_early_by_at_most_the_round_trip():
    clock = DatabaseClock(FakeServer().read_clock, recheck_seconds=3600)
    instant = time.monotonic() + 5
    converted = clock.in_server_time(instant)
    assert converted <= instant + SERVER_AHEAD  # never later than the server's true time
    assert converted >= instant + SERVER_AHEAD - ROUND_TRIP - 0.05


@pytest.mark.parametrize(
    ("recheck_seconds", "distrusted", "reads"),
    [
        (3600, False, 1),  # measured once, then reused
        (3600, True, 2),  # measured again after a refusal that had time left
        (0, False, 3),  # due at every conversion
    ],
)
def test_the_offset_is_measured_when_due(recheck_seconds, distrusted, reads):
    server = FakeServer()
    clock = DatabaseClock(server.read_clock, recheck_seconds)
    clock.in_server_time(time.monotonic())
    if distrusted:
        clock.distrust()
    clock.in_server_time(time.monotonic())
    if recheck_seconds == 0:
        clock.in_server_time(time.monotonic())
    assert server.reads == reads


def test_the_real_server_clock_maps_onto_ours(database_url):
    queries = queries_module(database_url, 1, 3, autocommit=True)
    try:
        clock = DatabaseClock(queries.database_clock, recheck_seconds=3600)
        offset = clock.in_server_time(0.0)
    finally:
        queries.engine.dispose()
    # Same host, so the server's wall clock is ours: the offset is wall minus monotonic.
    assert offset == pytest.approx(time.time() - time.monotonic(), abs=0.5)


@pytest.mark.parametrize(
    ("seconds_left", "stored"),
    [(60.0, True), (math.inf, True), (-0.001, False), (-60.0, False)],
)
def test_the_upsert_commits_only_before_its_deadline_in_the_servers_clock(
    database_url, db, seconds_left, stored
):
    queries = queries_module(database_url, 1, 3, autocommit=True)
    body = payload_a()
    row = to_row(validate_summary(body), json.dumps(body)).for_tenant(db.tenant())
    try:
        server_now = queries.database_clock()
        upsert = lambda: queries.upsert_sessions(  # noqa: E731
            rows=f"[{row.json}]", commit_by=server_now + seconds_left
        )
        if stored:
            assert upsert() == 1
        else:
            with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
                upsert()
            assert isinstance(refused.value.orig, psycopg.errors.QueryCanceled)
            assert "stopped waiting for this commit" in str(refused.value.orig)
    finally:
        queries.engine.dispose()
    assert (db.session(body["sessionId"]) is not None) == stored
    assert db.count() == (1 if stored else 0)
