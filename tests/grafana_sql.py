"""Turn a dashboard or alert-rule SQL into what Grafana sends to PostgreSQL.

No Grafana runs in the suite, so this does Grafana's two steps by hand, as its sources do
them (see ../shared/reference/grafana-notes.md):

1. the browser replaces dashboard variables (`$app_name`, `${app_name}`, `[[app_name]]`)
   and `$__interval`: multi-value and include-All values are quoted and comma-joined, a
   custom "All" value is inserted verbatim, a single value is escaped but not quoted;
2. the PostgreSQL datasource replaces `$__interval`, `$__interval_ms` and the macros
   (`$__timeFilter(col)`, `$__timeGroupAlias(col, 1h)`, ...) with plain SQL.

Used by tests/test_dashboards.py, tests/test_alerts.py and bench/dashboards.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
POSTGRES_UID = "m3w-postgres"
PROMETHEUS_UID = "m3w-prometheus"

# Grafana sizes $__interval from the panel's width in pixels; 1000 is a full-width panel
# on a 1080p screen. Panels that set maxDataPoints use theirs.
DEFAULT_MAX_DATA_POINTS = 1000
ALL = "$__all"  # what Grafana stores as the value of the "All" option


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, span: timedelta, now: datetime) -> TimeRange:
        return cls(now - span, now)

    @property
    def span(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class Variable:
    """The parts of a dashboard variable that decide how it is spelled in SQL."""

    name: str
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: tuple[str, ...] = ()  # what "All" stands for when there is no custom allValue

    @classmethod
    def from_dashboard(cls, model: Mapping) -> Variable:
        return cls(
            name=model["name"],
            multi=bool(model.get("multi")),
            include_all=bool(model.get("includeAll")),
            all_value=model.get("allValue") or None,
        )


# ---------------------------------------------------------------- step 1: the browser


# public/app/features/templating/template_srv.ts (variableRegex)
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?}"
)


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_value(variable: Variable, selected: str | Sequence[str], fmt: str | None) -> str:
    """The SQL text for one variable's current value."""
    if selected == ALL or (not isinstance(selected, str) and list(selected) == [ALL]):
        if variable.all_value is not None:
            return variable.all_value  # Grafana skips formatting of a custom all value
        selected = list(variable.options)
    values = [selected] if isinstance(selected, str) else list(selected)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "sqlstring":
        return ",".join(_quote_literal(v) for v in values)
    if fmt is not None:
        raise ValueError(f"variable format {fmt!r} is not supported here")
    # The SQL datasources' interpolateVariable()
    if isinstance(selected, str) and not (variable.multi or variable.include_all):
        return selected.replace("'", "''")
    return ",".join(_quote_literal(v) for v in values)


def replace_variables(
    sql: str,
    variables: Mapping[str, Variable],
    selection: Mapping[str, str | Sequence[str]],
    interval: timedelta,
) -> str:
    """Grafana's templateSrv.replace for a SQL datasource; unknown names stay as they are
    (the macros `$__timeFilter(...)` look like variables and are left for step 2)."""
    builtins = {
        "__interval": format_interval(interval),
        "__interval_ms": str(int(interval.total_seconds() * 1000)),
    }

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return match.group(0)
        if name not in selection:
            raise KeyError(f"no value chosen for dashboard variable ${name}")
        return format_value(variables[name], selection[name], fmt)

    return _VARIABLE.sub(substitute, sql)


# ------------------------------------------------------- step 2: the PostgreSQL datasource

# pkg/tsdb/grafana-postgresql-datasource/macros.go
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


def rfc3339nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fraction without trailing zeros, 'Z' for UTC."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_float(value: float) -> str:
    """fmt.Sprintf("%v", float64): shortest digits, exponent form from 1e+06 up."""
    number = Decimal(repr(float(value))).normalize()
    digits = number.as_tuple().digits
    exponent = len(digits) + number.as_tuple().exponent - 1
    if exponent < -4 or exponent >= 6:
        return f"{float(value):.{max(len(digits) - 1, 0)}e}"
    return format(number, "f")


def parse_interval(text: str) -> timedelta:
    """gtime.ParseInterval for the units dashboards use."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text.strip().strip("'"))
    if not match:
        raise ValueError(f"error parsing interval {text}")
    amount, unit = int(match.group(1)), match.group(2)
    seconds = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return timedelta(seconds=amount * seconds)


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval / the browser's secondsToHms for whole units."""
    ms = int(interval.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("d", 86400000), ("h", 3600000), ("m", 60000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms // 1000}s" if ms >= 1000 else f"{max(ms, 1)}ms"


def _time_group(args: list[str]) -> str:
    if len(args) < 2:
        raise ValueError("macro $__timeGroup needs time column and interval")
    seconds = go_float(parse_interval(args[1]).total_seconds())
    return f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"


def expand_macros(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    """sqleng.Interpolate followed by the PostgreSQL macro engine."""
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))
    start, end = rfc3339nano(time_range.start), rfc3339nano(time_range.end)
    original = sql

    def evaluate(match: re.Match) -> str:
        name = match.group(1)
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        if name == "__timeGroup":
            # Grafana's pre-5.3 quirk: a comma right after the call adds the alias.
            after = original.find(match.group(0)) + len(match.group(0))
            if after < len(original) and original[after] == ",":
                name = "__timeGroupAlias"
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        if name == "__timeFrom":
            return f"'{start}'"
        if name == "__timeTo":
            return f"'{end}'"
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeGroup":
            return _time_group(args)
        if name == "__timeGroupAlias":
            return _time_group(args) + ' AS "time"'
        if name == "__unixEpochFilter":
            return (
                f"{args[0]} >= {int(time_range.start.timestamp())} AND "
                f"{args[0]} <= {int(time_range.end.timestamp())}"
            )
        raise ValueError(f"unknown macro {name!r}")

    return _MACRO.sub(evaluate, sql)


# --------------------------------------------------------------------- the interval


def round_interval(ms: float) -> int:
    """Grafana's rangeutil.roundInterval (packages/grafana-data/src/datetime/rangeutil.ts)."""
    steps = [
        (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
        (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
        (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
        (750000, 600000), (1050000, 900000), (1500000, 1200000), (2700000, 1800000),
        (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
        (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
        (1814400000, 604800000), (3628800000, 2592000000),
    ]  # fmt: skip
    return next((rounded for limit, rounded in steps if ms < limit), 31536000000)


def panel_interval(time_range: TimeRange, panel: Mapping) -> timedelta:
    """$__interval as the browser computes it: range / maxDataPoints, rounded, raised to
    the panel's min interval."""
    points = panel.get("maxDataPoints") or DEFAULT_MAX_DATA_POINTS
    ms = round_interval(time_range.span.total_seconds() * 1000 / points)
    if panel.get("interval"):
        ms = max(ms, int(parse_interval(panel["interval"]).total_seconds() * 1000))
    return timedelta(milliseconds=ms)


# --------------------------------------------------------------- dashboards and rules


@dataclass(frozen=True)
class PanelQuery:
    dashboard_uid: str
    dashboard: Mapping
    panel: Mapping
    target: Mapping

    @property
    def key(self) -> str:
        return f"{self.dashboard_uid}/{self.panel['title']}/{self.target['refId']}"

    @property
    def sql(self) -> str:
        return self.target["rawSql"]

    def render(self, time_range: TimeRange, selection: Mapping[str, str | Sequence[str]]) -> str:
        interval = panel_interval(time_range, self.panel)
        sql = replace_variables(self.sql, dashboard_variables(self.dashboard), selection, interval)
        return expand_macros(sql, time_range, interval)


def load_dashboards() -> dict[str, dict]:
    dashboards = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        model = json.loads(path.read_text())
        dashboards[model["uid"]] = model
    return dashboards


def dashboard_variables(dashboard: Mapping) -> dict[str, Variable]:
    return {v["name"]: Variable.from_dashboard(v) for v in dashboard["templating"]["list"]}


def all_panels(dashboard: Mapping) -> Iterator[Mapping]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def target_datasource_uid(panel: Mapping, target: Mapping) -> str | None:
    return (target.get("datasource") or panel.get("datasource") or {}).get("uid")


def sql_panel_queries(dashboards: Mapping[str, Mapping] | None = None) -> list[PanelQuery]:
    """Every PostgreSQL target of every panel."""
    dashboards = load_dashboards() if dashboards is None else dashboards
    return [
        PanelQuery(uid, dashboard, panel, target)
        for uid, dashboard in dashboards.items()
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
        if target_datasource_uid(panel, target) == POSTGRES_UID
    ]


def variable_queries(dashboard: Mapping) -> list[Mapping]:
    """The SQL variable queries (not the backend health's Prometheus `tenant`)."""
    return [
        v
        for v in dashboard["templating"]["list"]
        if v["type"] == "query" and v["datasource"]["uid"] == POSTGRES_UID
    ]


def render_variable_query(
    dashboard: Mapping, variable: Mapping, time_range: TimeRange, selection: Mapping
) -> str:
    query = variable["query"]
    sql = query["rawSql"] if isinstance(query, Mapping) else query
    interval = panel_interval(time_range, {})
    sql = replace_variables(sql, dashboard_variables(dashboard), selection, interval)
    return expand_macros(sql, time_range, interval)


def load_alert_rules() -> list[dict]:
    rules = []
    for path in sorted((PROVISIONING_DIR / "alerting").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            rules.extend(group["rules"])
    return rules


def render_alert_query(node: Mapping, now: datetime) -> str:
    """An alert query as Grafana runs it: its relativeTimeRange ending `to` seconds before
    `now`; no dashboard variables exist there; $__interval is the model's intervalMs."""
    relative = node["relativeTimeRange"]
    time_range = TimeRange(
        now - timedelta(seconds=relative["from"]), now - timedelta(seconds=relative["to"])
    )
    interval = timedelta(milliseconds=node["model"].get("intervalMs", 1000))
    return expand_macros(node["model"]["rawSql"], time_range, interval)
