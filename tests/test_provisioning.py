"""Provisioning files, dashboard JSON, the compose stack and the image are what current
Grafana, Prometheus and Docker accept, and they agree with each other. No Grafana runs
here, so the checks are structural: uids resolve, every query follows the time picker,
every `$VARIABLE` a file needs is set by docker-compose.yml."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from tests.grafana_sql import (
    DASHBOARDS_DIR,
    POSTGRES_UID,
    PROMETHEUS_UID,
    PROVISIONING_DIR,
    ROOT,
    all_panels,
    load_alert_rules,
    load_dashboards,
    parse_interval,
    sql_panel_queries,
    target_datasource_uid,
)

DASHBOARDS = load_dashboards()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
QOE_DIMENSIONS = ("app_name", "app_version", "stream_type", "device_os")
# Timestamp columns with an index behind them (db/migrations): $__timeFilter must use one.
INDEXED_TIME_COLUMNS = {"ended_at", "s.ended_at", "started_at", "hour", "day"}
# Panels keyed by one session id: the dimension filters would only hide that session.
PANELS_WITHOUT_DIMENSIONS = {"m3w-session-explorer/Session columns", "m3w-session-explorer/Payload"}
# What the backend exports at GET /metrics (the throughput issue), with its labels.
BACKEND_METRICS = {
    "sessions_ingested_total": {"tenant"},
    "sessions_rejected_total": {"reason", "tenant"},
    "http_request_duration_seconds": {"route", "method", "status"},
    "ingest_batch_size": set(),
    "ingest_commit_duration_seconds": set(),
    "ingest_queue_depth": set(),
    "database_errors_total": set(),
}
HISTOGRAMS = {
    "http_request_duration_seconds",
    "ingest_batch_size",
    "ingest_commit_duration_seconds",
}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series

# Allowed keys from grafana-foundation-sdk's dashboard.jsonschema.json (strict:
# additionalProperties false), for the objects our dashboards use.
DASHBOARD_KEYS = {
    "id", "uid", "title", "description", "revision", "gnetId", "tags", "timezone", "editable",
    "graphTooltip", "time", "timepicker", "fiscalYearStartMonth", "liveNow", "weekStart",
    "refresh", "schemaVersion", "version", "panels", "templating", "annotations", "links",
    "snapshot",
}  # fmt: skip
PANEL_KEYS = {
    "type", "id", "pluginVersion", "tags", "targets", "title", "description", "transparent",
    "datasource", "gridPos", "links", "repeat", "repeatDirection", "maxPerRow", "maxDataPoints",
    "transformations", "interval", "timeFrom", "timeShift", "hideTimeOverride", "libraryPanel",
    "options", "fieldConfig",
}  # fmt: skip
VARIABLE_KEYS = {
    "type", "name", "label", "hide", "skipUrlSync", "description", "query", "datasource",
    "current", "multi", "options", "refresh", "sort", "includeAll", "allValue", "regex",
}  # fmt: skip
FIELD_CONFIG_KEYS = {
    "displayName", "displayNameFromDS", "description", "path", "writeable", "filterable", "unit",
    "decimals", "min", "max", "mappings", "thresholds", "color", "links", "noValue", "custom",
}  # fmt: skip
LINK_KEYS = {
    "title", "type", "icon", "tooltip", "url", "tags", "asDropdown", "targetBlank",
    "includeVars", "keepTime",
}  # fmt: skip
# Grafana 12 writes schemaVersion 41; 39 is Grafana 11.0. Older numbers get migrated on
# load, which means the file was not written for current Grafana.
MIN_SCHEMA_VERSION = 39


def provisioning_files() -> list[Path]:
    return sorted(PROVISIONING_DIR.glob("*/*.yaml"))


def load_yaml(kind: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((PROVISIONING_DIR / kind).glob("*.yaml"))]


def datasources() -> dict[str, dict]:
    return {ds["uid"]: ds for doc in load_yaml("datasources") for ds in doc["datasources"]}


def all_targets() -> Iterator[tuple[str, Mapping, Mapping]]:
    for uid, dashboard in DASHBOARDS.items():
        for panel in all_panels(dashboard):
            for target in panel.get("targets", []):
                yield uid, panel, target


# ------------------------------------------------------------------ provisioning files


@pytest.mark.parametrize("path", provisioning_files(), ids=lambda p: p.name)
def test_provisioning_file_is_version_1_yaml(path: Path):
    assert yaml.safe_load(path.read_text())["apiVersion"] == 1


def test_datasources_have_fixed_uids_and_credentials_from_the_environment():
    sources = datasources()
    assert set(sources) == {POSTGRES_UID, PROMETHEUS_UID}
    postgres = sources[POSTGRES_UID]
    assert postgres["type"] == "grafana-postgresql-datasource"
    for value in (
        postgres["url"],
        postgres["user"],
        postgres["secureJsonData"]["password"],
        postgres["jsonData"]["database"],
        postgres["jsonData"]["sslmode"],
    ):
        assert re.fullmatch(r"\$\{?M3W_[A-Z_]+\}?", value), value
    assert sources[PROMETHEUS_UID]["type"] == "prometheus"


def test_dashboard_provider_loads_the_dashboards_directory():
    [provider] = [p for doc in load_yaml("dashboards") for p in doc["providers"]]
    assert provider["type"] == "file"
    assert provider["folder"]
    path = provider["options"]["path"]
    grafana = COMPOSE["services"]["grafana"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    env_path = grafana["environment"][path.lstrip("$").strip("{}")]
    assert (ROOT / mounted[env_path]).resolve() == DASHBOARDS_DIR


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_every_variable_a_provisioning_file_needs_is_set_by_compose():
    environment = COMPOSE["services"]["grafana"]["environment"]
    needed = {
        (path.name, name)
        for path in provisioning_files()
        for text in strings(yaml.safe_load(path.read_text()))
        for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", text)
    }
    assert len(needed) >= 8
    for file, name in needed:
        assert name in environment, f"{file} needs ${name}; compose does not set it"


def test_contact_point_url_comes_from_the_environment_and_the_policy_uses_it():
    [notifications] = [d for d in load_yaml("alerting") if "contactPoints" in d]
    [contact] = notifications["contactPoints"]
    [receiver] = contact["receivers"]
    assert receiver["uid"]
    assert receiver["settings"]["url"] == "$M3W_ALERT_WEBHOOK_URL"
    [policy] = notifications["policies"]
    assert policy["receiver"] == contact["name"]


# ----------------------------------------------------------------------- dashboards


def test_dashboards_have_stable_distinct_uids_matching_their_links():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(uids) == len(set(uids)) == len(list(DASHBOARDS_DIR.glob("*.json"))) == 4
    for uid in uids:
        assert re.fullmatch(r"[a-z0-9-]{8,40}", uid)
    text = " ".join(p.read_text() for p in DASHBOARDS_DIR.glob("*.json"))
    for linked in re.findall(r"/d/([a-z0-9-]+)/", text):
        assert linked in uids


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_dashboard_uses_only_keys_current_grafana_knows(uid: str):
    dashboard = DASHBOARDS[uid]
    assert set(dashboard) <= DASHBOARD_KEYS
    assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert set(dashboard["time"]) == {"from", "to"}
    for link in dashboard.get("links", []):
        assert set(link) <= LINK_KEYS
    for variable in dashboard["templating"]["list"]:
        assert set(variable) <= VARIABLE_KEYS, variable["name"]
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in all_panels(dashboard):
        assert set(panel) <= PANEL_KEYS, panel["title"]
        assert set(panel["fieldConfig"]) == {"defaults", "overrides"}
        assert set(panel["fieldConfig"]["defaults"]) <= FIELD_CONFIG_KEYS
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel.get("description"), f"{panel['title']} says nothing about its numbers"


def test_every_datasource_reference_resolves():
    known = set(datasources())
    for uid, panel, target in all_targets():
        assert panel["datasource"]["uid"] in known, (uid, panel["title"])
        assert target_datasource_uid(panel, target) in known
    for dashboard in DASHBOARDS.values():
        for variable in dashboard["templating"]["list"]:
            if "datasource" in variable:
                assert variable["datasource"]["uid"] in known


def test_every_target_has_a_query_and_a_distinct_ref_id():
    for dashboard in DASHBOARDS.values():
        for panel in all_panels(dashboard):
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
            for target in panel["targets"]:
                assert (target.get("rawSql") or target.get("expr") or "").strip()


def follows_the_time_picker(sql: str) -> bool:
    """$__timeFilter on an indexed column, or the range passed to a dashboard function
    (qoe_overview(), qoe_breakdown(), ...: docs/grafana.md), which reads it by index."""
    columns = re.findall(r"\$__timeFilter\(([^)]*)\)", sql)
    if columns:
        return set(columns) <= INDEXED_TIME_COLUMNS
    return bool(re.search(r"\bqoe_\w+\(\$__timeFrom\(\), \$__timeTo\(\)", sql))


def test_every_sql_query_follows_the_time_picker_on_an_indexed_column():
    for query in sql_panel_queries():
        assert follows_the_time_picker(query.sql), f"{query.key} ignores the time picker"
        assert query.target["rawQuery"] is True
        assert query.target["format"] in {"table", "time_series"}


HARD_CODED_TIME = re.compile(
    r"now\(\)|current_(timestamp|date)|localtimestamp|'\d{4}-\d\d-\d\d|to_timestamp\(", re.I
)


def sql_texts() -> Iterator[tuple[str, str]]:
    for query in sql_panel_queries():
        yield query.key, query.sql
    for dashboard in DASHBOARDS.values():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                yield variable["name"], variable["query"]
    for rule in load_alert_rules():
        for node in rule["data"]:
            if "rawSql" in node["model"]:
                yield rule["uid"], node["model"]["rawSql"]


def test_no_query_has_a_hard_coded_time_filter():
    for name, sql in sql_texts():
        assert not HARD_CODED_TIME.search(sql), f"{name}: {HARD_CODED_TIME.search(sql)}"


def test_time_series_panels_bucket_by_the_interval():
    for query in sql_panel_queries():
        if query.panel["type"] == "timeseries":
            assert "$__timeGroupAlias(" in query.sql or "$__interval_ms" in query.sql, query.key
            assert query.target["format"] == "time_series"


def test_qoe_dashboards_offer_the_four_dimensions_with_an_all_that_includes_nulls():
    for uid in ("m3w-qoe-overview", "m3w-qoe-breakdowns", "m3w-session-explorer"):
        variables = {v["name"]: v for v in DASHBOARDS[uid]["templating"]["list"]}
        for name in QOE_DIMENSIONS:
            variable = variables[name]
            assert variable["multi"] and variable["includeAll"]
            # A custom all value: "All" matches every row, NULLs and values not listed yet.
            assert variable["allValue"] == "'*'"
            assert variable["refresh"] == 2  # options follow the time range
            assert follows_the_time_picker(variable["query"])


def test_every_qoe_panel_applies_every_dimension_variable():
    for query in sql_panel_queries():
        if f"{query.dashboard_uid}/{query.panel['title']}" in PANELS_WITHOUT_DIMENSIONS:
            continue
        for name in QOE_DIMENSIONS:
            # The "All" escape and the value test, once per source the query reads; or the
            # selection passed to a dashboard function (qoe_selected() does both there).
            if f"ARRAY[${name}]" in query.sql:
                continue
            assert query.sql.count(f"'*' IN (${name})") >= 1, (query.key, name)
            assert re.search(
                rf"\b{name}, 'unknown'\) IN \(\${name}\)|\b{name} IN \(\${name}\)", query.sql
            )


def test_qoe_dashboards_filter_every_panel_and_variable_by_tenant():
    """Issue 7: a `tenant` variable (multi, All by default) over `tenants`, passed to every
    panel query and to every other variable's query."""
    for uid in ("m3w-qoe-overview", "m3w-qoe-breakdowns", "m3w-session-explorer"):
        variables = DASHBOARDS[uid]["templating"]["list"]
        tenant = next(v for v in variables if v["name"] == "tenant")
        assert tenant["multi"] and tenant["includeAll"] and tenant["allValue"] == "'*'"
        assert tenant["current"]["value"] == ["$__all"]
        assert re.search(r"\bFROM tenants\b", tenant["query"])
        for variable in variables:
            if variable["type"] == "query" and variable is not tenant:
                assert "ARRAY[$tenant]" in variable["query"], (uid, variable["name"])
    for query in sql_panel_queries():
        assert "ARRAY[$tenant]" in query.sql, query.key
    # The backend health: the two metrics with a `tenant` label follow the variable.
    health = DASHBOARDS["m3w-backend-health"]
    [tenant] = health["templating"]["list"]
    assert tenant["name"] == "tenant" and tenant["multi"] and tenant["includeAll"]
    for name, expr in prometheus_exprs():
        if "sessions_ingested_total" in expr or "sessions_rejected_total" in expr:
            assert 'tenant=~"$tenant"' in expr, name
    # Alert rules: per tenant (one series per tenant), or every tenant said explicitly.
    for rule in load_alert_rules():
        for node in rule["data"]:
            sql = node["model"].get("rawSql")
            if sql:
                assert "ARRAY[t.id::text]" in sql or "'{*}')" in sql, rule["uid"]


# ------------------------------------------------------------------ Prometheus panels

PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "max", "min",
    "avg", "count", "le", "on", "ignoring", "bool", "and", "or", "unless",
}  # fmt: skip


def series_names() -> dict[str, set[str]]:
    names = {}
    for metric, labels in BACKEND_METRICS.items():
        if metric in HISTOGRAMS:
            names[f"{metric}_bucket"] = labels | {"le"}
            names[f"{metric}_sum"] = labels
            names[f"{metric}_count"] = labels
        else:
            names[metric] = labels
    return names


def prometheus_exprs() -> list[tuple[str, str]]:
    return [
        (f"{uid}/{panel['title']}", target["expr"])
        for uid, panel, target in all_targets()
        if target_datasource_uid(panel, target) == PROMETHEUS_UID
    ]


def test_backend_health_dashboard_shows_every_backend_metric():
    used = " ".join(expr for _, expr in prometheus_exprs())
    for metric in BACKEND_METRICS:
        assert metric in used


@pytest.mark.parametrize("name,expr", prometheus_exprs())
def test_promql_uses_only_metrics_and_labels_the_backend_exports(name: str, expr: str):
    series = series_names()
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    matchers = re.findall(r"\{([^}]*)\}", without_ranges)
    grouping = re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", without_ranges)
    bare = re.sub(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)", " ", without_ranges)
    identifiers = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare)) - PROMQL_WORDS
    used_series = identifiers - {"e"}
    assert used_series, expr
    assert used_series <= set(series), f"{name}: unknown metric {used_series - set(series)}"
    labels = set().union(*(series[s] for s in used_series)) | TARGET_LABELS
    for text in matchers + grouping:
        for label in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=|,|$)", text):
            assert label in labels, f"{name}: label {label!r} is not on {used_series}"


# ------------------------------------------------------------------------ alert rules

RULES = load_alert_rules()


def test_alert_rules_cover_failures_startup_and_ingestion_with_distinct_uids():
    assert [r["uid"] for r in RULES] == [
        "m3w-playback-failure-spike",
        "m3w-startup-p95-regression",
        "m3w-ingestion-stopped",
    ]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["uid"])
def test_alert_rule_is_a_query_reduce_threshold_chain(rule: dict):
    nodes = {node["refId"]: node for node in rule["data"]}
    assert rule["condition"] in nodes
    known = set(datasources()) | {"__expr__"}
    for node in rule["data"]:
        assert node["datasourceUid"] in known
        assert node["model"]["refId"] == node["refId"]
        if node["datasourceUid"] == "__expr__":
            assert node["model"]["expression"] in nodes
        else:
            relative = node["relativeTimeRange"]
            assert relative["from"] > relative["to"] >= 0
            assert node["model"]["format"] == "time_series"
            assert follows_the_time_picker(node["model"]["rawSql"])
    types = [n["model"].get("type") for n in rule["data"] if n["datasourceUid"] == "__expr__"]
    assert types == ["reduce", "threshold"]
    assert nodes[rule["condition"]]["model"]["type"] == "threshold"
    parse_interval(rule["for"])
    assert rule["noDataState"] in {"OK", "NoData", "Alerting", "KeepLast"}
    assert rule["execErrState"] in {"OK", "Error", "Alerting", "KeepLast"}
    # Grafana expands $NAME from its environment in labels; annotations are read as written,
    # where $values and $labels are the alert template's variables (tests/test_alerts.py).
    for text in rule["labels"].values():
        assert "$" not in text
    for text in rule["annotations"].values():
        assert not re.search(r"\$(?!values\.|labels\.)", text), text
    panel_ids = {p["id"] for p in all_panels(DASHBOARDS[rule["dashboardUid"]])}
    assert rule["panelId"] in panel_ids


def test_alert_groups_have_a_folder_and_an_interval():
    [document] = [d for d in load_yaml("alerting") if "groups" in d]
    for group in document["groups"]:
        assert group["folder"]
        parse_interval(group["interval"])


# ------------------------------------------------------- compose, image, Prometheus


def test_compose_runs_the_stack_on_the_documented_ports():
    services = COMPOSE["services"]
    assert set(services) >= {"postgres", "db-init", "migrate", "backend", "grafana", "prometheus"}
    published = {p.split(":")[0] for s in services.values() for p in s.get("ports", [])}
    assert published == {"8080", "3000"}  # PostgreSQL and Prometheus: inside the stack only
    assert "ports" not in services["postgres"]
    assert "healthcheck" in services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_compose_migrates_before_the_backend_starts():
    services = COMPOSE["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["m3w", "migrate"]
    assert "sslmode=disable" in migrate["environment"]["DATABASE_URL"]
    assert migrate["environment"]["DATABASE_USER"] == "m3w_owner"  # owns the schema
    # The roles exist (db-init) before the first migration grants to them.
    assert migrate["depends_on"]["db-init"]["condition"] == "service_completed_successfully"
    assert services["db-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    backend = services["backend"]["depends_on"]
    assert backend["migrate"]["condition"] == "service_completed_successfully"


def test_compose_sets_only_variables_the_service_reads():
    readme = (ROOT / "README.md").read_text()
    first_cells = re.findall(r"^\| ((?:`[A-Z0-9_]+`(?:, )?)+) \|", readme, re.M)
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z0-9_]+)`", cell)}
    backend = COMPOSE["services"]["backend"]["environment"]
    assert set(backend) <= documented
    assert {"M3W_API_KEY", "DATABASE_URL", "PORT"} <= set(backend)


def test_compose_grafana_mounts_the_provisioning_and_needs_an_admin_password():
    grafana = COMPOSE["services"]["grafana"]
    sources = {v.split(":")[0] for v in grafana["volumes"]}
    assert {"./grafana/provisioning", "./grafana/dashboards"} <= sources
    for source in sources - {"grafana-data"}:
        assert (ROOT / source).exists()
    password = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password  # no default
    assert grafana["environment"]["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["ports"] == ["3000:3000"]


def test_prometheus_scrapes_the_backend_metrics_endpoint():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["backend:8080"]
    volumes = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes


def test_image_is_slim_unprivileged_and_checks_health():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]\.\d+-slim-\w+$", dockerfile, re.M)  # exact
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/health'", dockerfile, re.M)
    assert "service.app:create_app --factory" in dockerfile
    for needed in ("service", "queries", "db"):
        assert re.search(rf"^COPY {needed} ", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".m3w"} <= set(ignored)
    assert not {"service", "queries", "db"} & set(ignored)
