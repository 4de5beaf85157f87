"""Every dashboard panel, run as Grafana would run it against a migrated database, shows the
numbers the QoE definitions give (../shared/reference/qoe-metrics.md), computed here in
plain Python from the same seeded sessions.

The seed covers several apps, versions, devices, stream types and days, payload-A sessions
with every dimension NULL, failures, exits before video start and rebuffering. Part of it is
rolled up and part is not (the rest arrives after the refresh, and some sessions are moved
to other hours and days by newer summaries), so both the rollups and their on-the-fly
fallback are checked. A panel without an expected value here fails the suite.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from service.migrations import dbmate
from tests.conftest import create_database
from tests.grafana_sql import (
    ALL,
    PanelQuery,
    TimeRange,
    load_dashboards,
    render_variable_query,
    sql_panel_queries,
    variable_queries,
)

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
DIMENSIONS = ("app_name", "app_version", "stream_type", "device_os")
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
SCENARIOS = {
    "all": {d: ALL for d in DIMENSIONS} | {"min_sessions": "1", "session_id": ""},
    "alpha-vod-or-unknown": {
        "app_name": ["alpha"],
        "app_version": ALL,
        "stream_type": ["VOD", "unknown"],
        "device_os": ALL,
        "min_sessions": "10",
        "session_id": "",
    },
    "unknown-os-one-session": {d: ALL for d in DIMENSIONS}
    | {"device_os": ["unknown"], "min_sessions": "1", "session_id": "a-0099"},
}
# In table order, as docs/schema.md lists them.
SESSIONS_COLUMNS = [
    "session_id", "timestamp", "ended_at", "started_at", "schema_version",
    "session_duration_ms", "startup_time_ms", "rebuffer_time_ms", "rebuffer_count",
    "play_time_ms", "rebuffer_ratio", "total_dropped_frames", "total_seek_count",
    "total_seek_time_ms", "mean_video_format_bitrate", "error_count", "last_error_code",
    "last_error_category", "quality_switch_count", "content_id", "stream_type",
    "device_model", "device_os", "device_os_version", "app_name", "app_version",
    "created_at", "updated_at",
]  # fmt: skip


# ------------------------------------------------------------------------- the seed


def make_session(rng: random.Random, index: int, payload_a: bool) -> dict:
    ended_at = NOW - timedelta(seconds=rng.randrange(9 * 86400))
    if index % 97 == 0:
        ended_at = ended_at.replace(minute=0, second=0, microsecond=0)  # on an hour boundary
    failed = rng.random() < 0.05
    started = (not failed and rng.random() > 0.06) or (failed and rng.random() < 0.3)
    play = None if rng.random() < 0.03 else rng.randrange(0, 900_000)
    rebuffer = 0 if rng.random() < 0.6 else rng.randrange(1, 20_000)
    if index % 50 == 0:
        startup = rng.choice([40, 150_000])  # below the first bucket, above the last
    else:
        startup = int(rng.lognormvariate(7, 0.7)) if started else None
    errors = rng.randint(1, 3) if failed else (None if payload_a and index % 7 == 0 else 0)
    rebuffer_time = None if rng.random() < 0.03 else rebuffer
    rebuffer_count = 0 if rebuffer == 0 else rng.randint(1, 6)
    bitrate = None if rng.random() < 0.1 else rng.randrange(300_000, 8_000_000)
    dropped = None if rng.random() < 0.1 else rng.randrange(0, 300)
    duration = rng.choice([None, 400, rng.randrange(1000, 2_000_000)]) if payload_a else None
    session = {
        "session_id": f"{'a' if payload_a else 'b'}-{index:04d}",
        "ended_at": ended_at,
        "startup_time_ms": startup,
        "error_count": errors,
        "play_time_ms": play,
        "rebuffer_time_ms": rebuffer_time,
        "rebuffer_count": rebuffer_count,
        "mean_video_format_bitrate": bitrate,
        "total_dropped_frames": dropped,
        "session_duration_ms": duration,
        **dict.fromkeys((*DIMENSIONS, "device_model", "device_os_version", "content_id")),
    }
    if not payload_a:
        app = rng.choice(["alpha", "alpha", "beta"])
        session |= {
            "app_name": app,
            "app_version": rng.choice(["1.0", "1.1"]) if app == "alpha" else "2.0",
            "stream_type": rng.choice(["VOD", "VOD", "LIVE", None]),
            "device_os": rng.choice(["Android", "Android", "Fire OS"]),
            "device_model": rng.choice(["Pixel 8", "Galaxy S23", "Fire TV Stick", "Shield"]),
            "device_os_version": rng.choice(["13", "14", "15"]),
            "content_id": rng.choice([f"movie-{n}" for n in range(6)]),
        }
    return session


def seed_sessions() -> list[dict]:
    rng = random.Random(20261125)
    return [make_session(rng, i, payload_a=i % 3 == 0) for i in range(1500)]


INSERT = """
INSERT INTO sessions AS stored (session_id, "timestamp", ended_at, startup_time_ms, error_count,
    play_time_ms, rebuffer_time_ms, rebuffer_count, mean_video_format_bitrate,
    total_dropped_frames, session_duration_ms, app_name, app_version, stream_type, device_os,
    device_model, device_os_version, content_id, payload)
VALUES (%(session_id)s, %(timestamp)s, %(ended_at)s, %(startup_time_ms)s, %(error_count)s,
    %(play_time_ms)s, %(rebuffer_time_ms)s, %(rebuffer_count)s, %(mean_video_format_bitrate)s,
    %(total_dropped_frames)s, %(session_duration_ms)s, %(app_name)s, %(app_version)s,
    %(stream_type)s, %(device_os)s, %(device_model)s, %(device_os_version)s, %(content_id)s,
    %(payload)s)
ON CONFLICT (session_id) DO UPDATE SET
    "timestamp" = EXCLUDED."timestamp", ended_at = EXCLUDED.ended_at,
    startup_time_ms = EXCLUDED.startup_time_ms, error_count = EXCLUDED.error_count,
    app_version = EXCLUDED.app_version, payload = EXCLUDED.payload
"""


def write(conn: psycopg.Connection, sessions: Sequence[dict]) -> None:
    rows = []
    for s in sessions:
        payload = {"sessionId": s["session_id"], "startupTimeMs": s["startup_time_ms"]}
        rows.append(
            s | {"timestamp": int(s["ended_at"].timestamp() * 1000), "payload": json.dumps(payload)}
        )
    with conn.cursor() as cursor:
        cursor.executemany(INSERT, rows)


@dataclass(frozen=True)
class Seeded:
    dsn: str
    sessions: list[dict]  # what the database holds
    refreshed: list[dict]  # what it held at the last refresh_qoe_rollups()


@pytest.fixture(scope="module")
def seeded(postgres_server) -> Seeded:
    """The database as a dashboard would find it between two refreshes."""
    url = create_database(postgres_server, "m3w_dashboards")
    dbmate(url, "up")
    sessions = seed_sessions()
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        write(conn, sessions[:1200])
        conn.execute("SELECT refresh_qoe_rollups()")
        write(conn, sessions[1200:1450])
        # Newer summaries that move sessions to another hour (and often another day) and
        # change their metrics: both the old and the new bucket must follow.
        for s in sessions[:60:3]:
            s |= {
                "ended_at": min(s["ended_at"] + timedelta(hours=30), NOW),
                "startup_time_ms": 9_000,
                "error_count": 0,
                "app_version": s["app_version"] and "1.1",
            }
        write(conn, sessions[:60:3])
        gone = {s["session_id"] for s in sessions[100:110]}
        conn.execute("DELETE FROM sessions WHERE session_id = ANY(%s)", [list(gone)])
        conn.execute("SELECT refresh_qoe_rollups()")
        refreshed = [s for s in sessions[:1450] if s["session_id"] not in gone]
        # After the refresh: unchanged rewrites and new sessions, in dirty hours.
        write(conn, sessions[1400:])
    kept = [s for s in sessions if s["session_id"] not in gone]
    return Seeded(url.libpq, kept, refreshed)


# ---------------------------------------------------------------- the definitions


def dim(s: dict, name: str) -> str:
    return "unknown" if s[name] is None else s[name]


def matches(s: dict, selection: dict) -> bool:
    return all(selection[d] == ALL or dim(s, d) in selection[d] for d in DIMENSIONS)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def failed(s: dict) -> bool:
    return (s["error_count"] or 0) > 0


def ebvs(s: dict) -> bool:
    return s["startup_time_ms"] is None and not failed(s)


def watch_ms(s: dict) -> int:
    return (s["play_time_ms"] or 0) + (s["rebuffer_time_ms"] or 0)


def ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return None if not denominator else scale * numerator / denominator


def smoothness(s: dict) -> float:
    fraction = (s["rebuffer_time_ms"] or 0) / watch_ms(s) if watch_ms(s) else 0.0
    count = s["rebuffer_count"] or 0
    return (100 / math.sqrt(1 + (count / 2) ** 2) + 100 * math.exp(-10 * fraction)) / 2


def success_points(s: dict) -> int:
    return 0 if failed(s) else 50 if ebvs(s) else 100


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile_cont(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def bucket_bounds(value: float) -> tuple[float, float]:
    """The startup histogram bucket holding `value` (docs/grafana.md: six per doubling)."""
    if value < 100:
        return 0.0, 100.0
    k = max(k for k in range(61) if 100 * 2 ** (k / 6) <= value)
    low = 100 * 2 ** (k / 6)
    return (low, low) if k == 60 else (low, 100 * 2 ** ((k + 1) / 6))


@dataclass(frozen=True)
class HistogramPercentile:
    """A percentile read from the histogram: inside the bucket of the order statistic."""

    values: tuple[float, ...]
    q: float

    def accepts(self, actual: float | None) -> bool:
        if not self.values:
            return actual is None
        rank = max(1, math.ceil(self.q * len(self.values)))
        low, high = bucket_bounds(sorted(self.values)[rank - 1])
        return actual is not None and low - 1e-6 <= actual <= high + 1e-6


def histogram_percentile(sessions: list[dict], q: float) -> HistogramPercentile:
    started = [s["startup_time_ms"] for s in sessions if s["startup_time_ms"] is not None]
    return HistogramPercentile(tuple(started), q)


# ------------------------------------------------------------ expected panel values


@dataclass(frozen=True)
class Case:
    sessions: list[dict]
    time_range: TimeRange
    selection: dict
    refreshed: list[dict] | None = None  # the sessions the daily rollup holds

    def by_hour(self) -> list[dict]:
        """Sessions of the hours that start inside the range (the hourly rollup's rule)."""
        start, end = self.time_range.start, self.time_range.end
        return [
            s
            for s in self.sessions
            if start <= hour_of(s["ended_at"]) <= end and matches(s, self.selection)
        ]

    def exact(self) -> list[dict]:
        start, end = self.time_range.start, self.time_range.end
        return [
            s for s in self.sessions if start <= s["ended_at"] <= end and matches(s, self.selection)
        ]

    def by_day(self) -> list[dict]:
        """Sessions of the days that start inside the range, as of the last refresh."""
        start, end = self.time_range.start, self.time_range.end
        return [
            s
            for s in (self.sessions if self.refreshed is None else self.refreshed)
            if start <= day_of(s["ended_at"]) <= end and matches(s, self.selection)
        ]


def overview_stats(rows: list[dict]) -> dict[str, Callable[[], dict]]:
    started = [s for s in rows if s["startup_time_ms"] is not None]
    scored = [s for s in rows if (s["session_duration_ms"] or 1000) >= 1000]
    watch = sum(watch_ms(s) for s in rows)
    play = sum(s["play_time_ms"] or 0 for s in rows)
    dropped = sum(s["total_dropped_frames"] or 0 for s in rows)
    bitrates = [
        s["mean_video_format_bitrate"] for s in rows if s["mean_video_format_bitrate"] is not None
    ]
    return {
        "Sessions": {"Sessions": len(rows)},
        "Playback failure rate": {
            "Playback failure rate": ratio(sum(map(failed, rows)), len(rows), 100)
        },
        "Exits before video start": {
            "Exits before video start": ratio(sum(map(ebvs, rows)), len(rows), 100)
        },
        "Startup time": {
            f"p{round(q * 100)}": histogram_percentile(rows, q) for q in (0.5, 0.95, 0.99)
        },
        "Rebuffer percentage": {
            "Rebuffer percentage": ratio(sum(s["rebuffer_time_ms"] or 0 for s in rows), watch, 100)
        },
        "Rebuffer frequency": {
            "Rebuffers per minute": ratio(
                sum(s["rebuffer_count"] or 0 for s in rows), watch / 60000
            )
        },
        "Mean bitrate": {"Mean bitrate": mean(bitrates)},
        "Dropped frames": {"Per minute of play": ratio(dropped, play / 60000), "Total": dropped},
        "Startup time score": {
            "Startup time score": mean([800 / (8 + s["startup_time_ms"] / 1000) for s in started])
        },
        "Smoothness score": {"Smoothness score": mean([smoothness(s) for s in started])},
        "Playback success score": {
            "Playback success score": mean([success_points(s) for s in scored])
        },
    }


SERIES_COLUMNS = {
    "Sessions over time": ["Sessions"],
    "Failures and exits before video start": ["Playback failure rate", "Exits before video start"],
    "Startup time percentiles": ["p50", "p95", "p99"],
    "Rebuffering over time": ["Rebuffer percentage", "Rebuffers per minute"],
}


def overview_stat(title: str) -> Callable[[Case], list[dict]]:
    return lambda case: [overview_stats(case.by_hour())[title]]


def overview_series(title: str) -> Callable[[Case], list[dict]]:
    def expected(case: Case) -> list[dict]:
        hours: dict[datetime, list[dict]] = defaultdict(list)
        for s in case.by_hour():
            hours[hour_of(s["ended_at"])].append(s)
        out = []
        for hour in sorted(hours):
            values = {
                column: value
                for stat in overview_stats(hours[hour]).values()
                for column, value in stat.items()
            }
            out.append({"time": hour.timestamp()} | {c: values[c] for c in SERIES_COLUMNS[title]})
        return out

    return expected


def breakdown(dimension: str, label: str) -> Callable[[Case], list[dict]]:
    def expected(case: Case) -> list[dict]:
        exact = case.time_range.span < timedelta(days=3)
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for s in case.exact() if exact else case.by_day():
            key = (
                (dim(s, "app_name"), dim(s, dimension))
                if dimension == "app_version"
                else (dim(s, dimension),)
            )
            groups[key].append(s)
        out = []
        for key, rows in groups.items():
            if len(rows) < int(case.selection["min_sessions"]):
                continue
            startups = [s["startup_time_ms"] for s in rows if s["startup_time_ms"] is not None]
            row = {
                label: key[-1],
                "Sessions": len(rows),
                "Startup p95 (ms)": percentile_cont(startups, 0.95)
                if exact
                else HistogramPercentile(tuple(startups), 0.95),
                "Rebuffer %": ratio(
                    sum(s["rebuffer_time_ms"] or 0 for s in rows),
                    sum(watch_ms(s) for s in rows),
                    100,
                ),
                "Failure %": ratio(sum(map(failed, rows)), len(rows), 100),
            }
            if dimension == "app_version":
                row["App"] = key[0]
            out.append(row)
        return out

    return expected


def recent_sessions(case: Case) -> list[dict]:
    wanted = case.selection["session_id"]
    rows = [s for s in case.exact() if not wanted or s["session_id"] == wanted]
    rows.sort(key=lambda s: s["session_id"])
    rows.sort(key=lambda s: s["ended_at"], reverse=True)
    return [
        {
            "Ended": s["ended_at"],
            "Session": s["session_id"],
            "App": dim(s, "app_name"),
            "App version": dim(s, "app_version"),
            "Stream type": dim(s, "stream_type"),
            "Device OS": dim(s, "device_os"),
            "Device model": s["device_model"],
            "Content id": s["content_id"],
            "Startup (ms)": s["startup_time_ms"],
            "Rebuffer %": ratio(s["rebuffer_time_ms"] or 0, watch_ms(s), 100),
            "Play time (ms)": s["play_time_ms"],
            "Fatal errors": s["error_count"],
            "Last error": None,
            "Bitrate": s["mean_video_format_bitrate"],
        }
        for s in rows[:500]
    ]


def chosen_session(case: Case) -> dict | None:
    start, end = case.time_range.start, case.time_range.end
    wanted = [s for s in case.sessions if s["session_id"] == case.selection["session_id"]]
    return wanted[0] if wanted and start <= wanted[0]["ended_at"] <= end else None


def session_columns(case: Case) -> list[dict]:
    s = chosen_session(case)
    if s is None:
        return []
    known = {
        "session_id": s["session_id"],
        "timestamp": str(int(s["ended_at"].timestamp() * 1000)),
        "startup_time_ms": None if s["startup_time_ms"] is None else str(s["startup_time_ms"]),
        "app_name": s["app_name"],
        "content_id": s["content_id"],
        "schema_version": None,
    }
    return [{"Column": c, "Value": known.get(c, ANY)} for c in SESSIONS_COLUMNS]


def payload(case: Case) -> list[dict]:
    s = chosen_session(case)
    if s is None:
        return []
    return [{"Payload": {"sessionId": s["session_id"], "startupTimeMs": s["startup_time_ms"]}}]


ANY = object()  # a value this test does not pin down (e.g. created_at)

EXPECTED: dict[str, Callable[[Case], list[dict]]] = {
    **{f"m3w-qoe-overview/{title}/A": overview_stat(title) for title in overview_stats([])},
    **{f"m3w-qoe-overview/{title}/A": overview_series(title) for title in SERIES_COLUMNS},
    "m3w-qoe-breakdowns/Worst app versions/A": breakdown("app_version", "App version"),
    "m3w-qoe-breakdowns/Worst device models/A": breakdown("device_model", "Device model"),
    "m3w-qoe-breakdowns/Worst OS versions/A": breakdown("device_os_version", "OS version"),
    "m3w-qoe-breakdowns/Worst content ids/A": breakdown("content_id", "Content id"),
    "m3w-session-explorer/Recent sessions/A": recent_sessions,
    "m3w-session-explorer/Session columns/A": session_columns,
    "m3w-session-explorer/Payload/A": payload,
}
# Row identity for panels whose order is not the point (the checks of order are below).
ROW_KEYS = {
    "m3w-qoe-breakdowns/Worst app versions/A": ("App", "App version"),
    "m3w-qoe-breakdowns/Worst device models/A": ("Device model",),
    "m3w-qoe-breakdowns/Worst OS versions/A": ("OS version",),
    "m3w-qoe-breakdowns/Worst content ids/A": ("Content id",),
}


# --------------------------------------------------------------------- comparing


def same(actual: object, expected: object) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, HistogramPercentile):
        return expected.accepts(None if actual is None else float(actual))
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, dict):
        return json.loads(actual) == expected
    if isinstance(expected, float) or isinstance(actual, float | Decimal):
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-9)
    return actual == expected


def assert_rows(key: str, actual: list[dict], expected: list[dict]) -> None:
    if key in ROW_KEYS:
        columns = ROW_KEYS[key]
        actual = sorted(actual, key=lambda r: tuple(r[c] for c in columns))
        expected = sorted(expected, key=lambda r: tuple(r[c] for c in columns))
    assert len(actual) == len(expected), f"{key}: {len(actual)} rows, expected {len(expected)}"
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want), key
        for column in want:
            assert same(got[column], want[column]), (
                f"{key} {column}: got {got[column]!r}, expected {want[column]!r} in row {got}"
            )


def run(dsn: str, sql: str) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


QUERIES = sql_panel_queries()


def test_every_panel_has_an_expected_value():
    assert {q.key for q in QUERIES} == set(EXPECTED)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("span", RANGES)
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.key)
def test_panel_shows_the_defined_numbers(seeded, query: PanelQuery, span: str, scenario: str):
    time_range = TimeRange.last(RANGES[span], NOW)
    case = Case(seeded.sessions, time_range, SCENARIOS[scenario], seeded.refreshed)
    actual = run(seeded.dsn, query.render(case.time_range, case.selection))
    assert_rows(query.key, actual, EXPECTED[query.key](case))


def test_golden_data_reaches_every_branch(seeded):
    """The seed is not trivial: each scenario sees sessions, the 24 h and 7 d ranges take
    different breakdown branches over different sessions, and some hours are not rolled up."""
    sessions = seeded.sessions
    assert len(seeded.refreshed) < len(sessions)
    for selection in SCENARIOS.values():
        case = Case(sessions, TimeRange.last(RANGES["24h"], NOW), selection)
        assert len(case.by_hour()) >= 20
    week = Case(sessions, TimeRange.last(RANGES["7d"], NOW), SCENARIOS["all"])
    assert len(week.by_day()) != len(week.exact())
    assert any(ebvs(s) for s in week.exact()) and any(failed(s) for s in week.exact())
    assert any(s["startup_time_ms"] is not None and s["startup_time_ms"] < 100 for s in sessions)
    chosen = SCENARIOS["unknown-os-one-session"]["session_id"]
    day = Case(sessions, TimeRange.last(RANGES["24h"], NOW), SCENARIOS["unknown-os-one-session"])
    assert chosen in {s["session_id"] for s in day.exact()}


@pytest.mark.parametrize("span", RANGES)
def test_breakdowns_list_the_worst_startup_first(seeded, span: str):
    dsn, sessions = seeded.dsn, seeded.sessions
    case = Case(sessions, TimeRange.last(RANGES[span], NOW), SCENARIOS["all"])
    for query in QUERIES:
        if query.dashboard_uid != "m3w-qoe-breakdowns":
            continue
        p95 = [
            r["Startup p95 (ms)"] for r in run(dsn, query.render(case.time_range, case.selection))
        ]
        known = [v for v in p95 if v is not None]
        assert known == sorted(known, reverse=True)
        assert p95[: len(known)] == known  # unknown p95 (nothing started) last


@pytest.mark.parametrize("span", ["1h", "24h", "7d", "30d"])
def test_variable_queries_list_the_values_in_range_with_nulls_as_unknown(seeded, span: str):
    dsn, sessions = seeded.dsn, seeded.sessions
    spans = RANGES | {"1h": timedelta(hours=1), "30d": timedelta(days=30)}
    for dashboard in load_dashboards().values():
        for variable in variable_queries(dashboard):
            for scenario, selection in SCENARIOS.items():
                case = Case(sessions, TimeRange.last(spans[span], NOW), selection)
                sql = render_variable_query(dashboard, variable, case.time_range, selection)
                values = [next(iter(r.values())) for r in run(dsn, sql)]
                scope = {d: ALL for d in DIMENSIONS}
                if variable["name"] == "app_version":
                    scope["app_name"] = selection["app_name"]
                in_range = Case(sessions, case.time_range, scope).by_hour()
                assert values == sorted({dim(s, variable["name"]) for s in in_range}), scenario


@pytest.mark.parametrize("span", [timedelta(minutes=5), timedelta(days=30), timedelta(days=90)])
def test_every_panel_runs_for_other_ranges(seeded, span: timedelta):
    for query in QUERIES:
        for selection in SCENARIOS.values():
            run(seeded.dsn, query.render(TimeRange.last(span, NOW), selection))


# ------------------------------------------------------------- the rollups themselves

HOURLY_FROM_SESSIONS = """
    SELECT * FROM qoe_hourly_aggregate(ARRAY(
        SELECT DISTINCT date_trunc('hour', ended_at, 'UTC') FROM sessions))
    ORDER BY hour, app_name, app_version, stream_type, device_os"""
DAILY_FROM_SESSIONS = """
    SELECT a.* FROM unnest(ARRAY['app_version', 'device_model', 'device_os_version',
                                 'content_id']) AS dimension,
         qoe_daily_breakdown_aggregate(ARRAY(
             SELECT DISTINCT date_trunc('day', ended_at, 'UTC') FROM sessions), dimension) AS a
    ORDER BY 1, 2, 3, 4, 5, 6, 7"""
HOURLY = "SELECT * FROM {} ORDER BY hour, app_name, app_version, stream_type, device_os"
DAILY = "SELECT * FROM {} ORDER BY 1, 2, 3, 4, 5, 6, 7"


@pytest.fixture
def rollups_db(postgres_server) -> str:
    url = create_database(postgres_server, "m3w_rollups")
    dbmate(url, "up")
    return url.libpq


def churn(conn: psycopg.Connection, sessions: list[dict]) -> None:
    """Newer summaries that move sessions across hours and days, and deletes."""
    for s in sessions[:40]:
        s["ended_at"] -= timedelta(hours=11)
        s["startup_time_ms"] = 20_000
    write(conn, sessions[:40])
    conn.execute("DELETE FROM sessions WHERE session_id = ANY(%s)", [["b-0041", "b-0043"]])


def test_refresh_leaves_rollups_equal_to_a_recomputation_from_sessions(rollups_db: str):
    sessions = seed_sessions()[:300]
    with psycopg.connect(rollups_db, autocommit=True, row_factory=dict_row) as conn:
        write(conn, sessions)
        conn.execute("SELECT refresh_qoe_rollups()")
        churn(conn, sessions)
        assert (
            conn.execute(HOURLY.format("qoe_hourly_rollup")).fetchall()
            != conn.execute(HOURLY_FROM_SESSIONS).fetchall()
        )  # stale until the refresh
        assert conn.execute("SELECT refresh_qoe_rollups() AS hours").fetchone()["hours"] > 0
        assert conn.execute("SELECT count(*) AS n FROM qoe_rollup_dirty_hours").fetchone()["n"] == 0
        hourly = conn.execute(HOURLY.format("qoe_hourly_rollup")).fetchall()
        assert hourly == conn.execute(HOURLY_FROM_SESSIONS).fetchall()
        daily = conn.execute(DAILY.format("qoe_daily_breakdown_rollup")).fetchall()
        assert daily == conn.execute(DAILY_FROM_SESSIONS).fetchall()
        assert sum(r["sessions"] for r in hourly) == 298


def test_hourly_view_is_exact_before_the_refresh_and_daily_view_after_it(rollups_db: str):
    sessions = seed_sessions()[:300]
    with psycopg.connect(rollups_db, autocommit=True, row_factory=dict_row) as conn:
        write(conn, sessions[:200])
        conn.execute("SELECT refresh_qoe_rollups()")
        churn(conn, sessions)
        write(conn, sessions[200:])
        assert (
            conn.execute(HOURLY.format("qoe_hourly")).fetchall()
            == conn.execute(HOURLY_FROM_SESSIONS).fetchall()
        )
        assert (
            conn.execute(DAILY.format("qoe_daily_breakdown")).fetchall()
            != conn.execute(DAILY_FROM_SESSIONS).fetchall()
        )
        conn.execute("SELECT refresh_qoe_rollups()")
        assert (
            conn.execute(DAILY.format("qoe_daily_breakdown")).fetchall()
            == conn.execute(DAILY_FROM_SESSIONS).fetchall()
        )


def test_one_refresh_at_a_time_and_truncate_empties_the_rollups(rollups_db: str):
    with psycopg.connect(rollups_db, autocommit=True) as conn:
        write(conn, seed_sessions()[:50])
        with psycopg.connect(rollups_db) as other:
            assert other.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
            # `other` holds the lock until it commits: this refresh steps aside.
            assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] == 0
        conn.execute("TRUNCATE sessions")
        for table in ("qoe_hourly_rollup", "qoe_daily_breakdown_rollup", "qoe_rollup_dirty_hours"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
