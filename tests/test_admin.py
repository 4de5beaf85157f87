"""`m3w tenants` and `m3w keys` as users run them: output, exit codes, and the rows behind."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest

from service.config import DatabaseUrl
from service.embedded_db import EmbeddedPostgres
from tests.conftest import Database, create_database, migrated_database
from tests.servers import free_port
from tests.tenancy import m3w

KEY_LINE = re.compile(r"m3w_[A-Za-z0-9_-]{43}\n")


@pytest.fixture(scope="module")
def admin_db(postgres_server: DatabaseUrl) -> DatabaseUrl:
    return migrated_database(postgres_server, "m3w_admin")


def counts(url: DatabaseUrl) -> tuple[int, int, int]:
    [row] = Database(url).query(
        "SELECT (SELECT count(*) FROM tenants) AS tenants, (SELECT count(*) FROM api_keys) AS keys,"
        " (SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL) AS revoked"
    )
    return row["tenants"], row["keys"], row["revoked"]


def test_tenants_and_keys_round_trip(admin_db):
    created = m3w(admin_db, "tenants", "create", "shop-prod", "--name", "Shop (prod)")
    assert created.returncode == 0, created.stderr
    listed = m3w(admin_db, "tenants", "list")
    assert listed.returncode == 0
    assert re.search(
        r"^shop-prod +Shop \(prod\) +\S+ \S+ UTC +0 +RETENTION_DAYS$", listed.stdout, re.MULTILINE
    )
    assert re.search(r"^default +Default ", listed.stdout, re.MULTILINE)

    made = m3w(admin_db, "keys", "create", "--tenant", "shop-prod", "--name", "android",
               "--expires-in", "30")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert KEY_LINE.fullmatch(made.stdout)  # the key alone: KEY=$(m3w keys create ...)
    key = made.stdout.strip()
    assert "only time the key is shown" in made.stderr
    assert key[:10] in made.stderr and key not in made.stderr

    [row] = Database(admin_db).query(
        "SELECT k.*, t.slug FROM api_keys AS k JOIN tenants AS t ON t.id = k.tenant_id "
        "WHERE t.slug = 'shop-prod'"
    )
    assert row["key_hash"] == hashlib.sha256(key.encode()).digest()
    assert (row["name"], row["prefix"]) == ("android", key[:10])
    assert row["expires_at"] - row["created_at"] == timedelta(days=30)
    assert row["revoked_at"] is None and row["last_used_at"] is None

    [entry] = json.loads(m3w(admin_db, "keys", "list", "--tenant", "shop-prod", "--json").stdout)
    assert {k: entry[k] for k in ("id", "tenant", "name", "prefix", "state", "last_used_at")} == {
        "id": row["id"],
        "tenant": "shop-prod",
        "name": "android",
        "prefix": key[:10],
        "state": "active",
        "last_used_at": None,
    }

    revoked = m3w(admin_db, "keys", "revoke", str(row["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert "Revoked" in revoked.stdout
    table = m3w(admin_db, "keys", "list").stdout
    assert re.search(rf"^{row['id']} +shop-prod +android +{re.escape(key[:10])}\.\.\. .* revoked$",
                     table, re.MULTILINE)  # fmt: skip
    again = m3w(admin_db, "keys", "revoke", str(row["id"]))
    assert (again.returncode, "revoked already" in again.stdout) == (0, True)
    assert counts(admin_db)[2] == 1


# (case, arguments, exit code, what stderr says)
REFUSED = [
    ("slug with capitals", ["tenants", "create", "Shop"], 1, "bad tenant slug 'Shop'"),
    ("slug too long", ["tenants", "create", "a" * 41], 1, "bad tenant slug"),
    ("slug with a space", ["tenants", "create", "a b"], 1, "bad tenant slug"),
    ("duplicate slug", ["tenants", "create", "default"], 1, "tenant 'default' exists already"),
    ("blank name", ["tenants", "create", "blank", "--name", " "], 1, "must not be blank"),
    ("unknown tenant", ["keys", "create", "--tenant", "nobody"], 1, "no tenant 'nobody'"),
    ("unknown tenant listed", ["keys", "list", "--tenant", "nobody"], 1, "no tenant 'nobody'"),
    ("unknown key", ["keys", "revoke", "999999"], 1, "no API key with id 999999"),
    ("expiry of 0 days", ["keys", "create", "--tenant", "default", "--expires-in", "0"], 2,
     "--expires-in"),
    ("key id not a number", ["keys", "revoke", "first"], 2, "invalid int value"),
    ("no tenant given", ["keys", "create"], 2, "--tenant"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "code", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_commands_say_why_and_change_nothing(admin_db, arguments, code, message):
    before = counts(admin_db)

    done = m3w(admin_db, *arguments)

    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert counts(admin_db) == before


def test_an_unreachable_or_unmigrated_database_is_exit_code_2(postgres_server):
    closed = DatabaseUrl("m3w", "pw", "127.0.0.1", free_port(), "media3watch")
    down = m3w(closed, "tenants", "list")
    assert down.returncode == 2
    assert "cannot use the database at postgres://m3w:" in down.stderr
    assert ":pw@" not in down.stderr  # the password redacted

    empty = m3w(create_database(postgres_server, "m3w_admin_empty"), "keys", "list")
    assert empty.returncode == 2
    assert "run `m3w migrate`" in empty.stderr
    assert "Traceback" not in empty.stderr


def test_keys_on_the_embedded_database_keep_stdout_for_the_key(tmp_path):
    """No DATABASE_URL: the embedded PostgreSQL of M3W_DATA_DIR, started for the command
    (as the schema owner) and stopped after it; its messages go to stderr."""
    env = {"M3W_DATA_DIR": str(tmp_path / "data"), "M3W_EMBEDDED_DB_PORT": str(free_port())}
    assert m3w(None, "migrate", **env).returncode == 0

    made = m3w(None, "keys", "create", "--tenant", "default", **env)

    assert made.returncode == 0, made.stderr
    assert KEY_LINE.fullmatch(made.stdout)
    assert "Starting the embedded PostgreSQL" in made.stderr
    assert "Stopping the embedded PostgreSQL" in made.stderr
    listed = m3w(None, "keys", "list", "--json", **env)
    assert [k["prefix"] for k in json.loads(listed.stdout)] == [made.stdout[:10]]
    assert not EmbeddedPostgres(tmp_path / "data" / "pgdata", 1).is_running()
