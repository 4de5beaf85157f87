"""Synthetic sessions for bench/dashboards.py, shaped like a real catalogue's traffic.

30 days ending now with a daily cycle; three apps with versions rolling out over the month;
~15% payload-A sessions (every dimension NULL); VOD and LIVE; 40 device models with a long
tail; 500 content ids (Zipf-like: a few titles take most views); ~2% playback failures,
~3% exits before video start, a third of the sessions rebuffering.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

COLUMNS = (
    "session_id", "timestamp", "ended_at", "started_at", "schema_version",
    "session_duration_ms", "startup_time_ms", "rebuffer_time_ms", "rebuffer_count",
    "play_time_ms", "rebuffer_ratio", "total_dropped_frames", "total_seek_count",
    "total_seek_time_ms", "mean_video_format_bitrate", "error_count", "last_error_code",
    "last_error_category", "content_id", "stream_type", "device_model", "device_os",
    "device_os_version", "app_name", "app_version", "payload",
)  # fmt: skip

APPS = {  # versions in release order; each new one takes over during the month
    "m3w-phone": ["3.1.0", "3.2.0", "3.2.1", "3.3.0"],
    "m3w-tv": ["1.8.2", "1.9.0", "2.0.0"],
    "m3w-kids": ["5.0.1", "5.1.0"],
}
APP_WEIGHTS = [0.55, 0.3, 0.15]
MODELS = [f"Model-{i:02d}" for i in range(40)]
MODEL_OS = {m: ("Fire OS" if i % 9 == 0 else "Android") for i, m in enumerate(MODELS)}
CONTENTS = [f"vod-{i:03d}" for i in range(480)] + [f"live-{i:02d}" for i in range(20)]
ERROR_CATEGORIES = ["NETWORK", "NETWORK", "SOURCE", "DECODER", "DRM", "UNKNOWN"]


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


MODEL_CDF = _cumulative([1 / (i + 1) for i in range(len(MODELS))])
VOD_CDF = _cumulative([1 / (i + 1) ** 1.1 for i in range(480)])


class SessionFactory:
    """Sessions numbered 0..count-1 in ended_at order, as ingestion writes them: a table
    loaded in random time order would scatter every time range over the whole heap."""

    def __init__(self, seed: int, now: datetime, days: int = 30, count: int = 1) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.days = days
        self.count = count
        self.start = now - timedelta(days=days)
        # Evening-heavy daily cycle: cumulative share of the month's sessions, per minute.
        weights = []
        for minute in range(days * 1440):
            moment = self.start + timedelta(minutes=minute)
            hour = moment.hour + moment.minute / 60
            weights.append(0.55 + 0.45 * math.sin((hour - 14) / 24 * 2 * math.pi))
        self.minute_cdf = _cumulative(weights)

    def ended_at(self, index: int) -> datetime:
        share = (index % self.count + self.rng.random()) / self.count
        minute = min(bisect.bisect(self.minute_cdf, share), len(self.minute_cdf) - 1)
        return self.start + timedelta(minutes=minute, seconds=self.rng.random() * 60)

    def version(self, app: str, moment: datetime) -> str:
        versions = APPS[app]
        progress = 1 - (self.now - moment).total_seconds() / (self.days * 86400)
        newest = min(len(versions) - 1, int(progress * len(versions)))
        # 70% on the newest release available then, the rest on the one before.
        return versions[newest] if newest == 0 or self.rng.random() < 0.7 else versions[newest - 1]

    def row(self, index: int) -> tuple:
        rng = self.rng
        ended = self.ended_at(index)
        payload_a = rng.random() < 0.15
        failed = rng.random() < 0.02
        exited = not failed and rng.random() < 0.03
        started = not (failed or exited) or (failed and rng.random() < 0.4)
        model = MODELS[bisect.bisect(MODEL_CDF, rng.random())]
        slow_device = model in ("Model-07", "Model-23")
        startup = (
            int(rng.lognormvariate(6.9, 0.6) * (1.8 if slow_device else 1)) if started else None
        )
        play = 0 if not started else int(rng.expovariate(1 / 900_000))
        rebuffering = started and rng.random() < 0.33
        rebuffer_count = rng.randint(1, 5) if rebuffering else 0
        rebuffer = sum(int(rng.expovariate(1 / 1500)) for _ in range(rebuffer_count))
        live = rng.random() < 0.2
        content = (
            CONTENTS[480 + rng.randrange(20)]
            if live
            else CONTENTS[bisect.bisect(VOD_CDF, rng.random())]
        )
        bitrate = rng.choice([800_000, 1_500_000, 3_000_000, 5_000_000, 8_000_000])
        errors = rng.randint(1, 2) if failed else 0
        session_id = f"bench-{index:09d}"
        stamp = int(ended.timestamp() * 1000)
        duration = (startup or 0) + play + rebuffer + rng.randrange(0, 5000)
        app = rng.choices(list(APPS), APP_WEIGHTS)[0]
        dims = (
            (None,) * 7
            if payload_a
            else (
                content,
                "LIVE" if live else "VOD",
                model,
                MODEL_OS[model],
                str(11 + MODELS.index(model) % 5),
                app,
                self.version(app, ended),
            )
        )
        payload = json.dumps(
            {
                "sessionId": session_id,
                "timestamp": stamp,
                "startupTimeMs": startup,
                "playTimeMs": play,
                "rebufferTimeMs": rebuffer,
                "rebufferCount": rebuffer_count,
                "errorCount": errors,
                "meanVideoFormatBitrate": bitrate,
            },
            separators=(",", ":"),
        )
        return (
            session_id, stamp, ended, ended - timedelta(milliseconds=duration),
            None if payload_a else "1.0.0", duration if payload_a else None, startup,
            rebuffer, rebuffer_count, play, rebuffer / max(play + rebuffer, 1),
            int(play / 1000 * rng.random() * 0.05), rng.randint(0, 3), rng.randrange(0, 3000),
            bitrate, errors, 2001 if failed else None,
            rng.choice(ERROR_CATEGORIES) if failed and not payload_a else None,
            *dims, payload,
        )  # fmt: skip

    def rows(self, start: int, count: int) -> Iterator[tuple]:
        for index in range(start, start + count):
            yield self.row(index)


def default_tenant(conn: psycopg.Connection) -> int | None:
    """The tenant bench sessions belong to (migration *_add_tenants_and_api_keys), or None
    on a database from before tenants."""
    if conn.execute("SELECT to_regclass('tenants')").fetchone()[0] is None:
        return None
    return conn.execute("SELECT id FROM tenants WHERE slug = 'default'").fetchone()[0]


def copy_sessions(
    conn: psycopg.Connection, count: int, seed: int, now: datetime, chunk: int = 200_000
) -> None:
    """COPY `count` sessions, one statement per chunk (the rollup triggers see each chunk)."""
    factory = SessionFactory(seed, now, count=count)
    tenant = default_tenant(conn)
    names = ", ".join(f'"{c}"' for c in (COLUMNS if tenant is None else ("tenant_id", *COLUMNS)))
    for start in range(0, count, chunk):
        with conn.transaction(), conn.cursor().copy(f"COPY sessions ({names}) FROM STDIN") as copy:
            for row in factory.rows(start, min(chunk, count - start)):
                copy.write_row(row if tenant is None else (tenant, *row))


def utc_now() -> datetime:
    return datetime.now(UTC)
