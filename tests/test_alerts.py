"""The provisioned alert rules fire on the incident they are for and stay quiet on normal
traffic. Each rule's chain is evaluated as Grafana does: query A (macros expanded for its
relativeTimeRange) -> reduce -> threshold; no rows from A is "no data", handled by the rule's
noDataState."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from service.migrations import dbmate
from tests.conftest import create_database
from tests.grafana_sql import POSTGRES_UID, load_alert_rules, render_alert_query

NOW = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
RULES = {rule["uid"]: rule for rule in load_alert_rules()}
FAILURES = "m3w-playback-failure-spike"
STARTUP = "m3w-startup-p95-regression"
STOPPED = "m3w-ingestion-stopped"


# ------------------------------------------------------------- Grafana's evaluation


def series_of(rows: Sequence[Mapping]) -> dict[str, list[float | None]]:
    """format: time_series: each numeric column but "time" is one series."""
    series: dict[str, list[float | None]] = {}
    for row in rows:
        for name, value in row.items():
            if name != "time":
                series.setdefault(name, []).append(None if value is None else float(value))
    return series


def reduce(values: list[float | None], reducer: str, mode: str | None) -> float:
    if mode == "dropNN":
        values = [v for v in values if v is not None and not math.isnan(v)]
    elif any(v is None for v in values):  # strict: a missing value makes the result NaN
        return math.nan
    if not values:
        return math.nan
    reducers = {"last": values[-1], "mean": sum(values) / len(values), "max": max(values),
                "min": min(values), "sum": sum(values), "count": float(len(values))}  # fmt: skip
    return reducers[reducer]


def threshold(value: float, evaluator: Mapping) -> float:
    low, *rest = evaluator["params"]
    kind = evaluator["type"]
    if math.isnan(value):
        return 0.0
    if kind == "gt":
        return float(value > low)
    if kind == "lt":
        return float(value < low)
    if kind == "within_range":
        return float(low < value < rest[0])
    if kind == "outside_range":
        return float(value < low or value > rest[0])
    raise ValueError(f"threshold type {kind!r} is not supported here")


def evaluate(dsn: str, rule: Mapping, now: datetime) -> str:
    """'Alerting' or 'Normal', the state the rule's condition puts it in at `now`."""
    results: dict[str, dict[str, float]] = {}
    no_data = False
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        for node in rule["data"]:
            model = node["model"]
            if node["datasourceUid"] == POSTGRES_UID:
                rows = conn.execute(render_alert_query(node, now)).fetchall()
                no_data = no_data or not rows
                results[node["refId"]] = series_of(rows)
            elif model["type"] == "reduce":
                source = results[model["expression"]]
                mode = (model.get("settings") or {}).get("mode")
                results[node["refId"]] = {
                    name: reduce(values, model["reducer"], mode) for name, values in source.items()
                }
            elif model["type"] == "threshold":
                [condition] = model["conditions"]
                results[node["refId"]] = {
                    name: threshold(value, condition["evaluator"])
                    for name, value in results[model["expression"]].items()
                }
            else:
                raise ValueError(f"expression type {model['type']!r} is not supported here")
    if no_data:
        return {"OK": "Normal", "Alerting": "Alerting"}.get(rule["noDataState"], "NoData")
    return "Alerting" if any(results[rule["condition"]].values()) else "Normal"


# ---------------------------------------------------------------------- traffic


def traffic(
    rng: random.Random,
    count: int,
    start: datetime,
    end: datetime,
    *,
    failure_rate: float = 0.01,
    startup_scale: float = 1.0,
) -> list[tuple]:
    rows = []
    for _ in range(count):
        ended_at = start + (end - start) * rng.random()
        failed = rng.random() < failure_rate
        startup = None if failed else int(rng.lognormvariate(7, 0.5) * startup_scale)
        rows.append((ended_at, startup, 1 if failed else 0))
    return rows


def normal_week(rng: random.Random) -> list[tuple]:
    """7 days of steady traffic before the last hour, and the last hour itself."""
    last_hour = NOW - timedelta(hours=1)
    return traffic(rng, 3000, NOW - timedelta(days=7), last_hour) + traffic(
        rng, 400, last_hour, NOW
    )


def scenario_rows(name: str) -> list[tuple]:
    rng = random.Random(name)
    quarter = NOW - timedelta(minutes=15)
    half_hour = NOW - timedelta(minutes=30)
    before = traffic(rng, 3000, NOW - timedelta(days=7), NOW - timedelta(hours=1))
    if name == "normal traffic":
        return normal_week(rng)
    if name == "failure spike":
        return before + traffic(rng, 300, quarter, NOW, failure_rate=0.12)
    if name == "few sessions, many failures":
        return before + traffic(rng, 30, quarter, NOW, failure_rate=0.5)
    if name == "startup regression":
        return before + traffic(rng, 300, half_hour, NOW, startup_scale=2.5)
    if name == "ingestion stopped":
        return before + traffic(rng, 200, NOW - timedelta(hours=1), NOW - timedelta(minutes=20))
    if name == "nothing ever received":
        return []
    raise ValueError(name)


SCENARIOS = {
    "normal traffic": set(),
    "failure spike": {FAILURES},
    "few sessions, many failures": set(),  # under 50 sessions: too few to judge
    "startup regression": {STARTUP},
    "ingestion stopped": {STOPPED},
    "nothing ever received": {STOPPED},
}


@pytest.fixture(scope="module")
def alerts_database(postgres_server) -> str:
    url = create_database(postgres_server, "m3w_alerts")
    dbmate(url, "up")
    return url.libpq


def load(dsn: str, rows: list[tuple]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE sessions")
        with conn.cursor().copy(
            'COPY sessions (session_id, "timestamp", ended_at, startup_time_ms, error_count, '
            "payload) FROM STDIN"
        ) as copy:
            for i, (ended_at, startup, errors) in enumerate(rows):
                stamp = int(ended_at.timestamp() * 1000)
                copy.write_row((f"s{i}", stamp, ended_at, startup, errors, "{}"))
        conn.execute("SELECT refresh_qoe_rollups()")  # the baseline as a live system has it


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_alert_rules_fire_on_their_incident_only(alerts_database: str, scenario: str):
    load(alerts_database, scenario_rows(scenario))
    firing = {
        uid for uid, rule in RULES.items() if evaluate(alerts_database, rule, NOW) == "Alerting"
    }
    assert firing == SCENARIOS[scenario]


def test_every_rule_is_exercised_by_a_firing_scenario():
    assert set().union(*SCENARIOS.values()) == set(RULES)


def test_failure_spike_stops_firing_once_it_is_out_of_the_window(alerts_database: str):
    load(alerts_database, scenario_rows("failure spike"))
    assert evaluate(alerts_database, RULES[FAILURES], NOW) == "Alerting"
    later = NOW + timedelta(minutes=16)
    assert evaluate(alerts_database, RULES[FAILURES], later) == "Normal"  # no data: OK
