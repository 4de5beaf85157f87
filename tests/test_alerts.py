"""The provisioned alert rules fire on the incident they are for and stay quiet on normal
traffic. Each rule's chain is evaluated as Grafana does: query A (macros expanded for its
relativeTimeRange) -> reduce -> threshold; no rows from A is "no data", handled by the rule's
noDataState."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import migrated_database
from tests.grafana_sql import POSTGRES_UID, load_alert_rules, render_alert_query
from tests.test_dashboards import bucket_bounds, default_tenant

NOW = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
RULES = {rule["uid"]: rule for rule in load_alert_rules()}
FAILURES = "m3w-playback-failure-spike"
STARTUP = "m3w-startup-p95-regression"
STOPPED = "m3w-ingestion-stopped"


# ------------------------------------------------------------- Grafana's evaluation


def series_of(rows: Sequence[Mapping]) -> dict[str, list[float | None]]:
    """format: time_series: each numeric column but "time" is one series per value of the
    text columns, which are its labels (the per-tenant rules' `tenant`)."""
    series: dict[str, list[float | None]] = {}
    for row in rows:
        labels = ",".join(f"{k}={v}" for k, v in row.items() if isinstance(v, str))
        for name, value in row.items():
            if name != "time" and not isinstance(value, str):
                key = f"{name}{{{labels}}}" if labels else name
                series.setdefault(key, []).append(None if value is None else float(value))
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
    return evaluate_nodes(dsn, rule, now)[0]


def evaluate_nodes(
    dsn: str, rule: Mapping, now: datetime
) -> tuple[str, dict[str, dict[str, float]]]:
    """The state, and every node's values by series (for the annotations' $values)."""
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
        state = {"OK": "Normal", "Alerting": "Alerting"}.get(rule["noDataState"], "NoData")
        return state, results
    return ("Alerting" if any(results[rule["condition"]].values()) else "Normal"), results


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
    url = migrated_database(postgres_server, "m3w_alerts")
    return url.libpq


def load(dsn: str, rows: list[tuple], tenants: Sequence[str] = ()) -> None:
    """The rows as sessions of the tenant `default`, or of tenants[i] for row i."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE sessions")
        tenant = default_tenant(conn)
        for slug in set(tenants) - {"default"}:
            conn.execute(
                "INSERT INTO tenants (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [slug, slug],
            )
        ids = dict(conn.execute("SELECT slug, id FROM tenants").fetchall()) if tenant else {}
        with conn.cursor().copy(
            f'COPY sessions ({"" if tenant is None else "tenant_id, "}session_id, "timestamp",'
            " ended_at, startup_time_ms, error_count, payload) FROM STDIN"
        ) as copy:
            for i, (ended_at, startup, errors) in enumerate(rows):
                stamp = int(ended_at.timestamp() * 1000)
                row = (f"s{i}", stamp, ended_at, startup, errors, "{}")
                if tenant is not None and tenants:
                    row = (ids[tenants[i]], *row)
                elif tenant is not None:
                    row = (tenant, *row)
                copy.write_row(row)
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


# ------------------------------------------------- the same numbers as the dashboards


def window(rows: list[tuple], start: datetime, end: datetime) -> list[tuple]:
    return [r for r in rows if start <= r[0] <= end]


def p95_bucket(rows: list[tuple]) -> tuple[float, float]:
    """The histogram bucket holding the p95 of the startup times (docs/grafana.md)."""
    started = sorted(startup for _, startup, _ in rows if startup is not None)
    return bucket_bounds(started[max(1, math.ceil(0.95 * len(started))) - 1])


def query_a(dsn: str, uid: str, now: datetime, tenant: str = "default") -> float:
    """Query A's value (for `tenant` when the rule is per tenant)."""
    [node] = [n for n in RULES[uid]["data"] if n["datasourceUid"] == POSTGRES_UID]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(render_alert_query(node, now)).fetchall()
    [value] = [row[-1] for row in rows if len(row) == 2 or row[1] == tenant]
    return float(value)


def test_per_tenant_rules_fire_for_the_failing_tenant_only(alerts_database: str):
    """A failure spike of a small app is not averaged away by a big healthy one: the rule
    fires with that tenant's label, and only for it."""
    rng = random.Random("tenants")
    quarter = NOW - timedelta(minutes=15)
    healthy = normal_week(rng) + traffic(rng, 3000, quarter, NOW)
    failing = traffic(rng, 100, quarter, NOW, failure_rate=0.15)
    load(alerts_database, healthy + failing, ["default"] * len(healthy) + ["shop"] * len(failing))
    state, results = evaluate_nodes(alerts_database, RULES[FAILURES], NOW)
    assert state == "Alerting"
    assert results["C"] == {"failure_rate{tenant=default}": 0.0, "failure_rate{tenant=shop}": 1.0}
    shop = [errors for ended_at, _, errors in failing if ended_at >= quarter]
    expected = 100 * sum(1 for e in shop if e) / len(shop)
    assert math.isclose(query_a(alerts_database, FAILURES, NOW, "shop"), expected, rel_tol=1e-12)
    # every tenant together, as before: about 1% + 15% x 100/3100, under the threshold
    [node] = [n for n in RULES[FAILURES]["data"] if n["datasourceUid"] == POSTGRES_UID]
    everyone = render_alert_query(node, NOW).replace("ARRAY[t.id::text]", "'{*}'")
    with psycopg.connect(alerts_database) as conn:
        rates = {row[-1] for row in conn.execute(everyone).fetchall()}
    assert len(rates) == 1 and rates.pop() < 5


@pytest.mark.parametrize("scenario", ["failure spike", "startup regression"])
def test_alert_queries_compute_the_dashboard_definitions(alerts_database: str, scenario: str):
    """Query A is the overview's number over the rule's window, per the definitions
    computed here from the rows loaded (failure rate and counts exact; p95 to one bucket)."""
    rows = scenario_rows(scenario)
    load(alerts_database, rows)
    quarter = window(rows, NOW - timedelta(minutes=15), NOW)
    failure_rate = 100 * sum(1 for _, _, errors in quarter if errors > 0) / len(quarter)
    assert math.isclose(query_a(alerts_database, FAILURES, NOW), failure_rate, rel_tol=1e-12)
    assert query_a(alerts_database, STOPPED, NOW) == len(quarter)
    recent_low, recent_high = p95_bucket(window(rows, NOW - timedelta(minutes=30), NOW))
    baseline_rows = window(
        rows, NOW - timedelta(minutes=30, days=7), NOW - timedelta(minutes=30, microseconds=1)
    )
    base_low, base_high = p95_bucket(baseline_rows)
    ratio = query_a(alerts_database, STARTUP, NOW)
    assert recent_low / base_high - 1e-9 <= ratio <= recent_high / base_low + 1e-9


# ------------------------------------------------------- the annotations' text


class GoTemplateError(Exception):
    pass


@dataclass(frozen=True)
class TemplateValue:
    """What $values.B / .Values.B is in Grafana's rule templates: an object with the
    series' labels and its number in .Value, not a number."""

    labels: dict
    value: float

    def __str__(self) -> str:
        return f"[ var='B' labels={{}} value={self.value:g} ]"


def go_printf(fmt: str, args: list[object]) -> str:
    """Go's fmt.Sprintf for the verbs annotations use; an operand of the wrong type renders
    as a bad verb (%!f(...)) instead of the number, as Go does for a value that is not one."""
    out, args = [], list(args)
    for literal, verb in re.findall(r"([^%]*)(%[-+# 0]*\d*(?:\.\d+)?[a-zA-Z%]|$)", fmt):
        out.append(literal)
        if not verb:
            continue
        if verb == "%%":
            out.append("%")
            continue
        arg = args.pop(0)
        kind = verb[-1]
        if kind in "feg" and isinstance(arg, int | float) and not isinstance(arg, bool):
            out.append(("%" + verb[1:]) % arg)
        elif kind in "sv":
            out.append(str(arg))
        else:
            out.append(f"%!{kind}({type(arg).__name__}={arg})")
    return "".join(out)


def humanize(value: object) -> str:
    """Prometheus' humanize (SI prefixes, 4 significant digits) for a number."""
    if not isinstance(value, int | float):
        raise GoTemplateError(f"humanize of {value!r}")
    number = float(value)
    if number == 0 or math.isinf(number) or math.isnan(number):
        return f"{number:.4g}"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    small = ["", "m", "u", "n", "p", "f", "a", "z", "y"]
    index = 0
    if abs(number) >= 1:
        while abs(number) >= 1000 and index < len(prefixes) - 1:
            number, index = number / 1000, index + 1
        return f"{number:.4g}{prefixes[index]}"
    while abs(number) < 1 and index < len(small) - 1:
        number, index = number * 1000, index + 1
    return f"{number:.4g}{small[index]}"


TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def template_argument(token: str, values: dict[str, TemplateValue], labels: dict) -> object:
    match = re.fullmatch(r"(?:\$values|\.Values)\.(\w+)(\.Value)?", token)
    if match:
        if match.group(1) not in values:
            raise GoTemplateError(f"no value {match.group(1)}")
        value = values[match.group(1)]
        return value.value if match.group(2) else value
    match = re.fullmatch(r"(?:\$labels|\.Labels)\.(\w+)", token)
    if match:
        return labels.get(match.group(1), "<no value>")
    if re.fullmatch(r"-?\d+(\.\d+)?", token):
        return float(token)
    raise GoTemplateError(f"unknown template argument {token!r}")


def render(text: str, values: dict[str, float], labels: dict | None = None) -> str:
    """A Go text/template renderer for the forms Grafana documents for rule annotations:
    {{ $values.B.Value }}, {{ humanize $values.B.Value }}, {{ printf "%.1f" $values.B.Value }},
    {{ $labels.name }} (and the .Values / .Labels spellings). Anything else is an error."""
    objects = {name: TemplateValue({}, value) for name, value in values.items()}

    def action(match: re.Match) -> str:
        found = list(TOKEN.finditer(match.group(1)))
        tokens = [m.group(1) if m.group(1) is not None else m.group(2) for m in found]
        quoted = [m.group(1) is not None for m in found]
        if not tokens:
            raise GoTemplateError("empty action")
        head, rest = tokens[0], tokens[1:]
        if head == "printf":
            if not rest or not quoted[1]:
                raise GoTemplateError("printf needs a format string")
            args = [template_argument(t, objects, labels or {}) for t in rest[1:]]
            return go_printf(rest[0], args)
        if head == "humanize":
            [arg] = rest
            return humanize(template_argument(arg, objects, labels or {}))
        if rest:
            raise GoTemplateError(f"unknown function {head!r}")
        return str(template_argument(head, objects, labels or {}))

    return re.sub(r"{{\s*(.*?)\s*}}", action, text)


def test_renderer_shows_what_printf_on_the_value_object_would_send():
    """The form issue #9 found: the value object is not a number."""
    assert "%!f(" in render('{{ printf "%.1f" .Values.B }}%', {"B": 12.34})
    assert render('{{ printf "%.1f" $values.B.Value }}%', {"B": 12.34}) == "12.3%"
    assert render("{{ humanize $values.B.Value }}", {"B": 12345.0}) == "12.35k"
    with pytest.raises(GoTemplateError):
        render("{{ $values.A.Value }}", {"B": 1.0})


FIRING = {FAILURES: "failure spike", STARTUP: "startup regression", STOPPED: "ingestion stopped"}


@pytest.mark.parametrize("uid", FIRING)
def test_annotations_render_the_alert_value(alerts_database: str, uid: str):
    """Each annotation renders to plain text with B's number formatted as written."""
    load(alerts_database, scenario_rows(FIRING[uid]))
    rule = RULES[uid]
    state, results = evaluate_nodes(alerts_database, rule, NOW)
    assert state == "Alerting"
    values = {ref: next(iter(series.values())) for ref, series in results.items() if series}
    for name, text in rule["annotations"].items():
        rendered = render(text, values, rule["labels"] | {"tenant": "default"})
        assert not re.search(r"{{|}}|%!|<no value>|map\[|\[ var=", rendered), (name, rendered)
        for fmt in re.findall(r'printf "([^"]+)" \$values\.B\.Value', text):
            assert go_printf(fmt, [values["B"]]) in rendered
    if uid == FAILURES:
        assert re.match(
            r"\d+\.\d% of the default sessions",
            render(rule["annotations"]["description"], values, {"tenant": "default"}),
        )
