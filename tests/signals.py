"""Real signals for tests to synchronise on (never a sleep): what /metrics says, what
PostgreSQL says its backends are doing, and a table lock that holds the service's commits
until the test lets them go."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
import psycopg

from service.config import DatabaseUrl

T = TypeVar("T")

# How long a wait for a signal may take before the test fails. A bound against hangs, not
# an expectation: the signals come in milliseconds.
SIGNAL_TIMEOUT = 30


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _summed(scrape: str, name: str) -> float | None:
    """The sum of the samples of `name` (`metric` or `metric{label="value",...}`) that have
    at least the labels given, whatever their other labels (e.g. every tenant); None when
    no sample matches."""
    wanted_name, _, wanted_labels = name.partition("{")
    wanted = dict(_LABEL.findall(wanted_labels))
    values = [
        float(value)
        for sample_name, labels, value in _SAMPLE.findall(scrape)
        if sample_name == wanted_name and wanted.items() <= dict(_LABEL.findall(labels)).items()
    ]
    return sum(values) if values else None


def metric(scrape: str, name: str) -> float:
    value = _summed(scrape, name)
    assert value is not None, f"{name} not in /metrics"
    return value


def metric_or_zero(scrape: str, name: str) -> float:
    value = _summed(scrape, name)
    return 0.0 if value is None else value


def scrape(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=10).text


def wait_until(check: Callable[[], T], what: str, timeout: float = SIGNAL_TIMEOUT) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)
    return result


def wait_for_metric(url: str, name: str, value: float) -> None:
    wait_until(lambda: metric_or_zero(scrape(url), name) == value, f"{name} == {value}")


def service_backends(url: DatabaseUrl, condition: str = "true") -> list[dict]:
    """The service's connections (application_name media3watch) matching `condition`."""
    with psycopg.connect(url.libpq, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT pid, state, wait_event_type, query FROM pg_stat_activity "
            f"WHERE application_name = 'media3watch' AND datname = %s AND ({condition})",
            (url.database,),
        ).fetchall()


def wait_for_commits_blocked(url: DatabaseUrl, count: int = 1) -> None:
    """Until `count` of the service's statements wait for a lock (see `sessions_locked`)."""
    wait_until(
        lambda: len(service_backends(url, "wait_event_type = 'Lock'")) >= count,
        f"{count} service statement(s) waiting on a lock",
    )


def wait_until_service_idle(url: DatabaseUrl) -> None:
    """Until none of the service's connections is inside a statement or a transaction."""
    wait_until(
        lambda: not service_backends(url, "state <> 'idle'"), "the service's connections idle"
    )


@contextmanager
def sessions_locked(url: DatabaseUrl) -> Iterator[None]:
    """Hold writes to `sessions` (a table lock in an open transaction) until the block ends:
    the service's commits wait in PostgreSQL, and what arrives meanwhile waits in its queue."""
    with psycopg.connect(url.libpq) as conn:
        conn.execute("LOCK TABLE sessions IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()
