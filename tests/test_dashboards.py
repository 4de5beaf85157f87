"""Every dashboard panel, run as Grafana would run it against a migrated database, shows the
numbers the QoE definitions give (../shared/reference/qoe-metrics.md, docs/grafana.md) over
exactly the sessions whose ended_at lies in the picked range, computed here in plain Python
from the same seeded sessions.

Ranges: 5 min, 15 min, 1 h, 90 min starting mid-hour, 6 h, 24 h, 2 d, 7 d and 35 d, ending
mid-hour and mid-day (so each has partial hours and days at both ends), plus sessions placed
exactly on range boundaries. The seed covers several apps, versions, devices, stream types and
weeks, payload-A sessions with every dimension NULL, failures, exits before video start and
rebuffering. Part of it is rolled up and part is not (the rest arrives after the refresh, and
some sessions are moved to other hours and days by newer summaries, some deleted), so the
rollups, the on-the-fly correction of dirty hours and the partial edges are all checked.
A panel without an expected value here fails the suite.
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

from service.config import DatabaseUrl
from tests.conftest import migrated_database
from tests.grafana_sql import (
    ALL,
    PanelQuery,
    TimeRange,
    load_alert_rules,
    load_dashboards,
    panel_interval,
    render_alert_query,
    render_variable_query,
    sql_panel_queries,
    variable_queries,
)

NOW = datetime(2026, 3, 10, 12, 30, 0, 250_000, tzinfo=UTC)
DIMENSIONS = ("app_name", "app_version", "stream_type", "device_os")
RANGES = {
    "5m": TimeRange.last(timedelta(minutes=5), NOW),
    "15m": TimeRange.last(timedelta(minutes=15), NOW),
    "1h": TimeRange.last(timedelta(hours=1), NOW),
    "90m-mid-hour": TimeRange(
        NOW - timedelta(hours=2, minutes=7), NOW - timedelta(minutes=37)
    ),  # 10:23 to 11:53
    "6h": TimeRange.last(timedelta(hours=6), NOW),
    "24h": TimeRange.last(timedelta(hours=24), NOW),
    "2d": TimeRange.last(timedelta(days=2), NOW),
    "7d": TimeRange.last(timedelta(days=7), NOW),
    "35d": TimeRange.last(timedelta(days=35), NOW),
}
# Two tenants: `default` (created by the migrations) and `beta`, created by write(). Their ids
# are those of a fresh database (checked by the `seeded` fixture); the dashboards' `tenant`
# variable has the ids as values and the slugs as texts.
TENANT_IDS = {"default": "1", "beta": "2"}
SCENARIOS = {
    "all": {d: ALL for d in DIMENSIONS} | {"tenant": ALL, "min_sessions": "1", "session_id": ""},
    "beta": {d: ALL for d in DIMENSIONS}
    | {"tenant": [TENANT_IDS["beta"]], "min_sessions": "1", "session_id": ""},
    "both-tenants-by-id": {d: ALL for d in DIMENSIONS}
    | {"tenant": list(TENANT_IDS.values()), "min_sessions": "1", "session_id": ""},
    # a beta session asked for under `default`: the session explorer shows nothing
    "default-alpha-beta-session": {d: ALL for d in DIMENSIONS}
    | {
        "app_name": ["alpha"],
        "tenant": [TENANT_IDS["default"]],
        "min_sessions": "1",
        "session_id": "b-0113",
    },
    "alpha-vod-or-unknown": {
        "tenant": ALL,
        "app_name": ["alpha"],
        "app_version": ALL,
        "stream_type": ["VOD", "unknown"],
        "device_os": ALL,
        "min_sessions": "3",
        "session_id": "",
    },
    "unknown-os-one-session": {d: ALL for d in DIMENSIONS}
    | {"device_os": ["unknown"], "tenant": ALL, "min_sessions": "1", "session_id": "a-0099"},
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


def make_session(rng: random.Random, index: int, payload_a: bool, ended_at: datetime) -> dict:
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
        "tenant": "beta" if index % 4 == 1 else "default",
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


def boundary_instants() -> list[datetime]:
    """Every range's start and end: a session there is inside (both ends included)."""
    edges = {moment for r in RANGES.values() for moment in (r.start, r.end)}
    return sorted(edges | {e - timedelta(microseconds=1) for e in edges})


def seed_sessions() -> list[dict]:
    """1500 sessions over 9 days, 300 in the last 3 hours (the short ranges), 200 over 40
    days (the 35-day range), and one on each range boundary and a microsecond before it."""
    rng = random.Random(20261125)
    moments = [NOW - timedelta(seconds=rng.randrange(9 * 86400)) for _ in range(1500)]
    moments += [NOW - timedelta(milliseconds=rng.randrange(3 * 3600_000)) for _ in range(300)]
    moments += [NOW - timedelta(seconds=rng.randrange(40 * 86400)) for _ in range(200)]
    moments += boundary_instants()
    return [make_session(rng, i, i % 3 == 0, moment) for i, moment in enumerate(moments)]


INSERT = """
INSERT INTO sessions AS stored ({tenant_column}session_id, "timestamp", ended_at,
    startup_time_ms, error_count, play_time_ms, rebuffer_time_ms, rebuffer_count,
    mean_video_format_bitrate, total_dropped_frames, session_duration_ms, app_name, app_version,
    stream_type, device_os, device_model, device_os_version, content_id, payload)
VALUES ({tenant_value}%(session_id)s, %(timestamp)s, %(ended_at)s, %(startup_time_ms)s,
    %(error_count)s, %(play_time_ms)s, %(rebuffer_time_ms)s, %(rebuffer_count)s,
    %(mean_video_format_bitrate)s, %(total_dropped_frames)s, %(session_duration_ms)s,
    %(app_name)s, %(app_version)s, %(stream_type)s, %(device_os)s, %(device_model)s,
    %(device_os_version)s, %(content_id)s, %(payload)s)
ON CONFLICT ({tenant_column}session_id) DO UPDATE SET
    "timestamp" = EXCLUDED."timestamp", ended_at = EXCLUDED.ended_at,
    startup_time_ms = EXCLUDED.startup_time_ms, error_count = EXCLUDED.error_count,
    app_version = EXCLUDED.app_version, payload = EXCLUDED.payload
"""


def default_tenant(conn: psycopg.Connection) -> int | None:
    """The tenant the test sessions belong to (migration *_add_tenants_and_api_keys), or
    None on a database migrated only up to before it (the backfill test)."""
    if conn.execute("SELECT to_regclass('tenants')").fetchone()[0] is None:
        return None
    return conn.execute("SELECT id FROM tenants WHERE slug = 'default'").fetchone()[0]


def write(conn: psycopg.Connection, sessions: Sequence[dict]) -> None:
    tenant = default_tenant(conn)
    statement = INSERT.format(
        tenant_column="" if tenant is None else "tenant_id, ",
        tenant_value="" if tenant is None else "(SELECT id FROM tenants WHERE slug = %(tenant)s), ",
    )
    if (
        tenant is not None
        and not conn.execute("SELECT FROM tenants WHERE slug = 'beta'").fetchall()
    ):
        conn.execute("INSERT INTO tenants (slug, name) VALUES ('beta', 'Beta')")
    rows = []
    for s in sessions:
        payload = {"sessionId": s["session_id"], "startupTimeMs": s["startup_time_ms"]}
        rows.append(
            s | {"timestamp": int(s["ended_at"].timestamp() * 1000), "payload": json.dumps(payload)}
        )
    with conn.cursor() as cursor:
        cursor.executemany(statement, rows)


@dataclass(frozen=True)
class Seeded:
    url: DatabaseUrl
    sessions: list[dict]  # what the database holds
    tenant: int | None  # their tenant, once the tenants migration ran

    @property
    def dsn(self) -> str:
        return self.url.libpq


@pytest.fixture(scope="module")
def seeded(postgres_server) -> Seeded:
    """The database as a dashboard would find it between two refreshes."""
    return seed_database(postgres_server, "m3w_dashboards")


def seed_database(postgres_server, name: str) -> Seeded:
    url = migrated_database(postgres_server, name)
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
        # After the refresh: new sessions and moved ones, in hours the rollups hold already.
        write(conn, sessions[1400:])
        for s in sessions[200:230]:
            s |= {"ended_at": s["ended_at"] - timedelta(hours=5), "error_count": 2}
        write(conn, sessions[200:230])
        conn.execute("DELETE FROM sessions WHERE session_id = ANY(%s)", [["b-0301", "b-0302"]])
        tenant = default_tenant(conn)
        tenants = dict(conn.execute("SELECT slug, id::text FROM tenants").fetchall())
    assert tenants == TENANT_IDS  # the scenarios name tenants by these ids
    gone |= {"b-0301", "b-0302"}
    return Seeded(url, [s for s in sessions if s["session_id"] not in gone], tenant)


# ---------------------------------------------------------------- the definitions


def dim(s: dict, name: str) -> str:
    return "unknown" if s[name] is None else s[name]


def matches(s: dict, selection: dict) -> bool:
    tenants = selection.get("tenant", ALL)
    return (tenants == ALL or TENANT_IDS[s["tenant"]] in tenants) and all(
        selection[d] == ALL or dim(s, d) in selection[d] for d in DIMENSIONS
    )


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
    tenant: int | None = None

    def exact(self) -> list[dict]:
        """The sessions a panel is about: ended_at in [from, to] (as $__timeFilter)."""
        start, end = self.time_range.start, self.time_range.end
        return [
            s for s in self.sessions if start <= s["ended_at"] <= end and matches(s, self.selection)
        ]


def overview_stats(rows: list[dict]) -> dict[str, dict]:
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
OVERVIEW = load_dashboards()["m3w-qoe-overview"]


def overview_stat(title: str) -> Callable[[Case], list[dict]]:
    return lambda case: [overview_stats(case.exact())[title]]


def bucket_of(moment: datetime, width: timedelta) -> datetime:
    """$__timeGroup's bucket: floor(epoch / width) * width."""
    seconds = width.total_seconds()
    return datetime.fromtimestamp(math.floor(moment.timestamp() / seconds) * seconds, UTC)


def overview_series(title: str) -> Callable[[Case], list[dict]]:
    [panel] = [p for p in OVERVIEW["panels"] if p["title"] == title]

    def expected(case: Case) -> list[dict]:
        width = panel_interval(case.time_range, panel)
        buckets: dict[datetime, list[dict]] = defaultdict(list)
        for s in case.exact():
            buckets[bucket_of(s["ended_at"], width)].append(s)
        out = []
        for start in sorted(buckets):
            values = {
                column: value
                for stat in overview_stats(buckets[start]).values()
                for column, value in stat.items()
            }
            out.append({"time": start} | {c: values[c] for c in SERIES_COLUMNS[title]})
        return out

    return expected


def breakdown(dimension: str, label: str) -> Callable[[Case], list[dict]]:
    def expected(case: Case) -> list[dict]:
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for s in case.exact():
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
            row = {
                label: key[-1],
                "Sessions": len(rows),
                "Startup p95 (ms)": histogram_percentile(rows, 0.95),
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
    tenants = case.selection["tenant"]
    return (
        wanted[0]
        if wanted
        and start <= wanted[0]["ended_at"] <= end
        and (tenants == ALL or TENANT_IDS[wanted[0]["tenant"]] in tenants)
        else None
    )


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
    columns = [{"Column": c, "Value": known.get(c, ANY)} for c in SESSIONS_COLUMNS]
    if case.tenant is not None:  # added last by migration *_add_tenants_and_api_keys
        columns.append({"Column": "tenant_id", "Value": TENANT_IDS[s["tenant"]]})
    return columns


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
    case = Case(seeded.sessions, RANGES[span], SCENARIOS[scenario], seeded.tenant)
    actual = run(seeded.dsn, query.render(case.time_range, case.selection))
    assert_rows(query.key, actual, EXPECTED[query.key](case))


def test_golden_data_reaches_every_branch(seeded):
    """The seed is not trivial: every range holds sessions, on its boundaries too; ranges
    have partial hours at both ends and the long ones whole days; hours are dirty."""
    sessions = seeded.sessions
    for name, time_range in RANGES.items():
        inside = Case(sessions, time_range, SCENARIOS["all"]).exact()
        assert len(inside) >= 10, name
        assert {time_range.start, time_range.end} <= {s["ended_at"] for s in inside}, name
        assert time_range.start.minute % 60 and time_range.end.minute % 60, name
    week = Case(sessions, RANGES["7d"], SCENARIOS["all"]).exact()
    assert any(ebvs(s) for s in week) and any(failed(s) for s in week)
    assert any(s["startup_time_ms"] is not None and s["startup_time_ms"] < 100 for s in sessions)
    with psycopg.connect(seeded.dsn) as conn:
        dirty = conn.execute("SELECT count(DISTINCT hour) FROM qoe_rollup_dirty_hours").fetchone()
        assert dirty[0] >= 20
    chosen = SCENARIOS["unknown-os-one-session"]["session_id"]
    day = Case(sessions, RANGES["24h"], SCENARIOS["unknown-os-one-session"])
    assert chosen in {s["session_id"] for s in day.exact()}


def panel_rows(seeded: Seeded, title: str, time_range: TimeRange, selection: dict) -> list[dict]:
    [query] = [
        q for q in QUERIES if q.dashboard_uid == "m3w-qoe-overview" and q.panel["title"] == title
    ]
    return run(seeded.dsn, query.render(time_range, selection))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("span", RANGES)
def test_series_sum_to_the_stats(seeded, span: str, scenario: str):
    """Buckets split the range's sessions without losing or doubling any: the first and last
    bucket hold the sessions of the range inside them."""
    time_range, selection = RANGES[span], SCENARIOS[scenario]
    [total] = panel_rows(seeded, "Sessions", time_range, selection)
    series = panel_rows(seeded, "Sessions over time", time_range, selection)
    assert total["Sessions"] == sum(row["Sessions"] for row in series)
    [panel] = [p for p in OVERVIEW["panels"] if p["title"] == "Sessions over time"]
    first = bucket_of(time_range.start, panel_interval(time_range, panel))
    assert all(first <= row["time"] for row in series)
    assert all(row["time"] <= time_range.end for row in series)
    [rate] = panel_rows(seeded, "Playback failure rate", time_range, selection)
    rates = panel_rows(seeded, "Failures and exits before video start", time_range, selection)
    failures = sum(
        r["Playback failure rate"] * s["Sessions"] for r, s in zip(rates, series, strict=True)
    )
    assert math.isclose(failures / total["Sessions"], rate["Playback failure rate"], rel_tol=1e-9)


@pytest.mark.parametrize("span", RANGES)
def test_all_tenants_is_the_sum_of_each_tenant(seeded, span: str):
    """Each tenant's numbers come from its own rollup rows, and "All" adds them up."""
    time_range = RANGES[span]
    by_tenant = [SCENARIOS["all"] | {"tenant": [t]} for t in TENANT_IDS.values()]
    counts = [panel_rows(seeded, "Sessions", time_range, sel)[0]["Sessions"] for sel in by_tenant]
    [total] = panel_rows(seeded, "Sessions", time_range, SCENARIOS["all"])
    assert all(counts) and sum(counts) == total["Sessions"]
    for query in QUERIES:
        if query.dashboard_uid != "m3w-qoe-breakdowns":
            continue
        rows = [run(seeded.dsn, query.render(time_range, sel)) for sel in by_tenant]
        every = run(seeded.dsn, query.render(time_range, SCENARIOS["all"]))
        assert sum(r["Sessions"] for part in rows for r in part) == sum(
            r["Sessions"] for r in every
        ), query.key


def test_the_explorers_lookup_by_session_id_is_indexed(seeded):
    """The primary key starts with tenant_id now: the session id has an index of its own."""
    with psycopg.connect(seeded.dsn) as conn:
        [(indexes,)] = conn.execute(
            "SELECT count(*) FROM pg_index AS i"
            " JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = 'sessions'::regclass AND a.attname = 'session_id'"
        ).fetchall()
    assert indexes >= 1


@pytest.mark.parametrize("span", ["5m", "1h", "90m-mid-hour", "6h", "2d", "7d", "35d"])
def test_series_buckets_follow_the_interval(span: str):
    """Minute buckets for short ranges; whole hours (partly from the rollup) from a day up:
    30 points a panel keeps a day's series as cheap as its stats (bench/dashboards.py)."""
    [panel] = [p for p in OVERVIEW["panels"] if p["title"] == "Sessions over time"]
    width = panel_interval(RANGES[span], panel)
    expected = {"5m": 1, "1h": 2, "90m-mid-hour": 2, "6h": 10, "2d": 120, "7d": 360, "35d": 1440}
    assert width == timedelta(minutes=expected[span])


@pytest.mark.parametrize("span", ["24h", "7d"])
def test_breakdowns_list_the_worst_startup_first(seeded, span: str):
    case = Case(seeded.sessions, RANGES[span], SCENARIOS["all"])
    for query in QUERIES:
        if query.dashboard_uid != "m3w-qoe-breakdowns":
            continue
        p95 = [
            r["Startup p95 (ms)"]
            for r in run(seeded.dsn, query.render(case.time_range, case.selection))
        ]
        known = [v for v in p95 if v is not None]
        assert known == sorted(known, reverse=True)
        assert p95[: len(known)] == known  # unknown p95 (nothing started) last


@pytest.mark.parametrize("span", RANGES)
def test_variable_queries_list_the_values_in_range_with_nulls_as_unknown(seeded, span: str):
    for dashboard in load_dashboards().values():
        for variable in variable_queries(dashboard):
            for scenario, selection in SCENARIOS.items():
                time_range = RANGES[span]
                sql = render_variable_query(dashboard, variable, time_range, selection)
                values = [next(iter(r.values())) for r in run(seeded.dsn, sql)]
                if variable["name"] == "tenant":  # the texts (slugs), not filtered by range
                    assert values == sorted(TENANT_IDS), scenario
                    continue
                scope = {d: ALL for d in DIMENSIONS} | {"tenant": selection["tenant"]}
                if variable["name"] == "app_version":
                    scope["app_name"] = selection["app_name"]
                in_range = Case(seeded.sessions, time_range, scope).exact()
                assert values == sorted({dim(s, variable["name"]) for s in in_range}), scenario


@pytest.mark.parametrize("span", [timedelta(seconds=1), timedelta(days=90)])
def test_every_panel_runs_for_other_ranges(seeded, span: timedelta):
    for query in QUERIES:
        for selection in SCENARIOS.values():
            run(seeded.dsn, query.render(TimeRange.last(span, NOW), selection))


# ------------------------------------------------------------------ privileges


def login_role(admin: DatabaseUrl, name: str, group: str, **settings: str) -> DatabaseUrl:
    """A fresh login role in `group`, as db/init creates them (roles are cluster-wide)."""
    password = f"{name}-password"
    with psycopg.connect(admin.libpq, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {name}")
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group}")
        for setting, value in settings.items():
            conn.execute(f"ALTER ROLE {name} SET {setting} = {value}")
    return DatabaseUrl(name, password, admin.host, admin.port, admin.database, admin.query)


def every_grafana_query(now: datetime) -> list[tuple[str, str]]:
    time_range, selection = RANGES["7d"], SCENARIOS["alpha-vod-or-unknown"]
    queries = [(q.key, q.render(time_range, selection)) for q in QUERIES]
    for uid, dashboard in load_dashboards().items():
        for variable in variable_queries(dashboard):
            sql = render_variable_query(dashboard, variable, time_range, selection)
            queries.append((f"{uid}/${variable['name']}", sql))
    for rule in load_alert_rules():
        for node in rule["data"]:
            if "rawSql" in node["model"]:
                queries.append((rule["uid"], render_alert_query(node, now)))
    return queries


def test_grafana_role_runs_every_query_read_only(seeded):
    grafana = login_role(
        seeded.url, "m3w_test_grafana", "m3w_dashboards", default_transaction_read_only="on"
    )
    queries = every_grafana_query(NOW)
    with psycopg.connect(grafana.libpq, autocommit=True, row_factory=dict_row) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == {
            "default_transaction_read_only": "on"
        }
        for key, sql in queries:
            try:
                conn.execute(sql).fetchall()
            except psycopg.Error as error:  # e.g. a missing privilege
                pytest.fail(f"{key} as a Grafana role: {error}")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("SELECT refresh_qoe_rollups()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET default_transaction_read_only = off")
            conn.execute("DELETE FROM sessions")
    assert len(queries) > len(QUERIES)


def test_ingest_role_writes_sessions_and_refreshes_the_rollups(seeded):
    service = login_role(seeded.url, "m3w_test_ingest", "m3w_ingest")
    late = make_session(random.Random(5), 9001, False, NOW - timedelta(days=3, minutes=1))
    with psycopg.connect(service.libpq, autocommit=True) as conn:
        write(conn, [late])
        assert conn.execute("SELECT refresh_qoe_rollups()").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM qoe_rollup_dirty_hours").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE qoe_hourly_rollup")
    seeded.sessions.append(late)  # later tests see it like any other session
