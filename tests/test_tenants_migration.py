"""Migration *_add_tenants_and_api_keys on a database that already holds sessions: they all
belong to the tenant `default`, the session's identity becomes (tenant, id), and the down
block gives the old table back."""

from __future__ import annotations

import psycopg
import pytest

from service.migrations import MigrationError, dbmate
from tests.conftest import Database, create_database

TENANTS_MIGRATION = "20261126110000"
OLD_ROWS = [("kept-1", 1_771_149_600_000), ("kept-2", 1_771_149_700_000), ("kept-3", 1)]


def newest_applied(db: Database) -> str:
    return db.query("SELECT max(version) AS v FROM schema_migrations")[0]["v"]


def test_existing_sessions_belong_to_default_and_survive_a_rollback(postgres_server):
    url = create_database(postgres_server, "m3w_tenant_upgrade")
    db = Database(url)
    dbmate(url, "up")
    while newest_applied(db) >= TENANTS_MIGRATION:  # back to the schema before tenants
        dbmate(url, "rollback")
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        for session_id, stamp in OLD_ROWS:
            conn.execute(
                "INSERT INTO sessions (session_id, timestamp, ended_at, payload) "
                "VALUES (%s, %s, to_timestamp(%s / 1000.0), '{}')",
                (session_id, stamp, stamp),
            )

    dbmate(url, "up")

    rows = db.query(
        "SELECT t.slug, s.session_id FROM sessions AS s JOIN tenants AS t ON t.id = s.tenant_id "
        "ORDER BY s.session_id"
    )
    assert rows == [{"slug": "default", "session_id": s} for s, _ in OLD_ROWS]
    [key] = db.query(
        "SELECT array_agg(a.attname ORDER BY k.n) AS columns FROM pg_constraint AS c, "
        "unnest(c.conkey) WITH ORDINALITY AS k (attnum, n) "
        "JOIN pg_attribute AS a ON a.attnum = k.attnum AND a.attrelid = 'sessions'::regclass "
        "WHERE c.conname = 'sessions_pkey'"
    )
    assert key["columns"] == ["tenant_id", "session_id"]
    assert db.query("SELECT column_default FROM information_schema.columns "
                    "WHERE table_name = 'sessions' AND column_name = 'tenant_id'") == [
        {"column_default": None}  # a row must name its tenant: none is filed under default
    ]  # fmt: skip

    # Another tenant's session with the same id is a second row; then the old single-id
    # table cannot come back, and the rollback says so and changes nothing.
    db.query("INSERT INTO tenants (slug, name) VALUES ('other', 'Other') RETURNING id")
    db.query(
        "INSERT INTO sessions (tenant_id, session_id, timestamp, ended_at, payload) "
        "SELECT id, 'kept-1', 1, now(), '{}' FROM tenants WHERE slug = 'other' RETURNING 1"
    )
    while newest_applied(db) > TENANTS_MIGRATION:  # later migrations first, if any
        dbmate(url, "rollback")
    with pytest.raises(MigrationError, match="several tenants have sessions with the same"):
        dbmate(url, "rollback")
    assert db.count() == len(OLD_ROWS) + 1

    db.query("DELETE FROM sessions WHERE tenant_id <> 1 RETURNING 1")
    dbmate(url, "rollback")
    assert newest_applied(db) < TENANTS_MIGRATION
    assert [r["session_id"] for r in db.query("SELECT session_id FROM sessions ORDER BY 1")] == [
        s for s, _ in OLD_ROWS
    ]
    assert db.query("SELECT to_regclass('tenants') AS t, to_regclass('api_keys') AS k") == [
        {"t": None, "k": None}
    ]
    dbmate(url, "up")
    assert db.query("SELECT DISTINCT tenant_id FROM sessions") == [{"tenant_id": 1}]
