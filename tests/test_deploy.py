"""The compose stack is safe as shipped: no database port, no default password, every
secret from .env, least-privilege roles per service, pinned images, healthchecks and a
grace period longer than the service's. No Docker engine here: the checks read the files
and interpolate them the way `docker compose config` does (tests/test_roles.py runs the
init step itself against a real PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
SECRET = re.compile(r"PASSWORD|API_KEY|SECRET|TOKEN")
REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(?:(:[?-])([^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(node: object, env: dict[str, str]) -> object:
    """Compose's rules for the forms used here: ${VAR}, ${VAR:-default}, ${VAR:?error}
    (unset or empty is an error) and $$ for a literal $."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        value = env.get(name, "")
        if operator == ":?" and not value:
            raise MissingVariable(f"{name}: {argument}")
        if operator == ":-" and not value:
            return argument
        return value

    if isinstance(node, str):
        parts = node.split("$$")
        return "$".join(REFERENCE.sub(one, part) for part in parts)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return node


def env_example() -> dict[str, str]:
    """The active `NAME=value` lines of .env.example."""
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", ENV_EXAMPLE, re.M))


def required_variables() -> set[str]:
    return {name for name, operator, _ in REFERENCE.findall(COMPOSE_TEXT) if operator == ":?"}


def filled_env() -> dict[str, str]:
    return {name: f"value-of-{name.lower()}" for name in env_example()}


def resolved() -> dict:
    return interpolate(COMPOSE, filled_env())["services"]


def test_every_secret_must_come_from_env_and_has_no_default():
    references = REFERENCE.findall(COMPOSE_TEXT)
    secrets = {name for name, _, _ in references if SECRET.search(name)}
    assert secrets >= {
        "POSTGRES_PASSWORD",
        "M3W_DB_OWNER_PASSWORD",
        "M3W_DB_SERVICE_PASSWORD",
        "M3W_DB_GRAFANA_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "M3W_API_KEY",
    }
    for name, operator, _ in references:
        if name in secrets:
            assert operator == ":?", f"${{{name}}} must be ${{{name}:?...}}"
    # No password, key or well-known credential written into the file itself.
    for literal in ("m3w:m3w", "admin/admin", "dev-key", ":-m3w}"):
        assert literal not in COMPOSE_TEXT


def test_env_example_lists_exactly_the_required_variables_all_blank():
    example = env_example()
    assert set(example) == required_variables()
    assert all(value == "" for value in example.values()), "no usable secret in the repo"
    optional = set(re.findall(r"^# ([A-Z0-9_]+)=", ENV_EXAMPLE, re.M))
    defaults = {name for name, operator, _ in REFERENCE.findall(COMPOSE_TEXT) if operator == ":-"}
    assert optional <= defaults


@pytest.mark.parametrize("missing", sorted(required_variables()))
def test_compose_refuses_to_start_without_each_secret(missing):
    env = {**filled_env(), missing: ""}
    with pytest.raises(MissingVariable, match=missing):
        interpolate(COMPOSE, env)


def test_a_copied_env_example_is_refused_until_filled_in():
    with pytest.raises(MissingVariable):
        interpolate(COMPOSE, env_example())
    interpolate(COMPOSE, filled_env())


def test_postgres_is_not_published_and_nothing_else_listens_unexpectedly():
    assert "ports" not in SERVICES["postgres"]
    assert "ports" not in SERVICES["prometheus"]
    published = {name: service["ports"] for name, service in SERVICES.items() if "ports" in service}
    assert published == {"backend": ["8080:8080"], "grafana": ["3000:3000"]}


def test_each_service_logs_in_as_its_own_role():
    services, env = resolved(), filled_env()
    init = services["db-init"]
    # Only the init job knows the superuser's password.
    holders = {
        name
        for name, service in services.items()
        if env["POSTGRES_PASSWORD"] in str(service.get("environment", {}))
        or env["POSTGRES_PASSWORD"] in str(service.get("command", ""))
    }
    assert holders == {"postgres", "db-init"}
    assert init["environment"]["PGPASSWORD"] == env["POSTGRES_PASSWORD"]
    assert init["command"][0] == "psql" and init["command"][-1] == "/db/init/roles.sql"
    assert "./db/init:/db/init:ro" in init["volumes"]
    assert (ROOT / "db" / "init" / "roles.sql").exists()
    for variable in ("owner_password", "service_password", "grafana_password"):
        role = variable.split("_")[0]
        assert f"{variable}={env[f'M3W_DB_{role.upper()}_PASSWORD']}" in init["command"]

    for service, role, password in (
        ("migrate", "m3w_owner", "M3W_DB_OWNER_PASSWORD"),
        ("backend", "m3w_service", "M3W_DB_SERVICE_PASSWORD"),
    ):
        environment = services[service]["environment"]
        assert (environment["DATABASE_USER"], environment["DATABASE_PASSWORD"]) == (
            role,
            env[password],
        )
        # The role and password travel beside the URL, never inside it.
        assert "@" not in environment["DATABASE_URL"]
    grafana = services["grafana"]["environment"]
    assert (grafana["M3W_PG_USER"], grafana["M3W_PG_PASSWORD"]) == (
        "m3w_grafana",
        env["M3W_DB_GRAFANA_PASSWORD"],
    )


def test_grafana_admin_password_from_env_and_no_sign_up():
    grafana = resolved()["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == filled_env()["GRAFANA_ADMIN_PASSWORD"]
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


IMAGE_TAG = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?(-[a-z]+\d+(\.\d+)*)?$")


@pytest.mark.parametrize(
    "image",
    sorted(
        {interpolate(s["image"], {}) for s in SERVICES.values() if not s.get("build")}
        - {"media3watch-backend:local"}
    ),
)
def test_images_are_pinned_to_exact_versions(image):
    assert IMAGE_TAG.match(image), f"{image}: pin an exact version, not a moving tag"


def test_the_backend_image_is_built_from_an_exact_base():
    dockerfile = (ROOT / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", base), base


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def test_backend_stop_grace_period_outlasts_its_graceful_shutdown():
    backend = resolved()["backend"]
    graceful = float(backend["environment"]["GRACEFUL_SHUTDOWN_TIMEOUT"])
    # Docker's default is 10 s: without this, SIGKILL cuts the commit of queued sessions.
    assert seconds(backend["stop_grace_period"]) > graceful + 5
    assert seconds(SERVICES["postgres"]["stop_grace_period"]) > 10


def test_every_long_running_service_has_a_healthcheck_and_one_shots_are_awaited():
    awaited = {
        dependency
        for service in SERVICES.values()
        for dependency, condition in service.get("depends_on", {}).items()
        if condition["condition"] == "service_completed_successfully"
    }
    for name, service in SERVICES.items():
        if service.get("restart") == "no":
            assert name in awaited, f"{name} is a one-shot nobody waits for"
        else:
            check = service.get("healthcheck", {})
            assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert awaited == {"db-init", "migrate"}


def test_dependants_wait_for_healthy_services():
    for service in SERVICES.values():
        for dependency, condition in service.get("depends_on", {}).items():
            if SERVICES[dependency].get("restart") != "no":
                assert condition["condition"] == "service_healthy", dependency


def test_secrets_stay_out_of_git_and_the_image():
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_procfile_migrates_with_m3w_migrate():
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert procfile["release"] == "m3w migrate"  # any URL form, M3W_MIGRATE_DATABASE_URL


def test_deploy_docs_cover_compose_and_an_external_database():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for needed in (
        "cp .env.example .env",
        "db/init/roles.sql",
        "-v owner_password=",
        "M3W_MIGRATE_DATABASE_URL",
        "127.0.0.1:5432:5432",
        "pgpass",
    ):
        assert needed in deploy, needed
    for name in required_variables():
        assert f"`{name}`" in deploy, f"docs/deploy.md does not explain {name}"
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()
