"""Every migration has a working down block: up, roll back to zero, up again."""

from __future__ import annotations

from service.migrations import MIGRATIONS_DIR, dbmate
from tests.conftest import Database, create_database


def tables(db: Database) -> set[str]:
    rows = db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def test_migrations_roll_back_to_zero_and_apply_again(postgres_server):
    url = create_database(postgres_server, "m3w_migrations")
    db = Database(url)
    migrations = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert migrations

    dbmate(url, "up")
    assert "sessions" in tables(db)

    for _ in migrations:
        dbmate(url, "rollback")
    assert tables(db) == {"schema_migrations"}
    assert db.query("SELECT count(*) AS n FROM schema_migrations")[0]["n"] == 0

    dbmate(url, "up")
    assert "sessions" in tables(db)
    assert "Pending: 0" in dbmate(url, "status").stdout


def test_time_filter_columns_are_indexed(database_url):
    indexes = Database(database_url).query(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'sessions'"
    )
    definitions = " ".join(r["indexdef"] for r in indexes)
    assert "(ended_at)" in definitions
    assert "(started_at)" in definitions


def test_dbmate_gets_the_password_from_its_environment_not_its_command_line(
    database_url, tmp_path, monkeypatch
):
    """Any local user can read a command line (`ps`); the environment is the process's own."""
    seen = tmp_path / "seen"
    spy = tmp_path / "dbmate"
    spy.write_text(f'#!/bin/sh\necho "argv: $*" > {seen}\necho "env: $DATABASE_URL" >> {seen}\n')
    spy.chmod(0o700)
    monkeypatch.setattr("service.migrations.dbmate_binary", lambda: str(spy))
    url = database_url.__class__(
        "someone", "s3cret-pw", database_url.host, database_url.port, "db", database_url.query
    )

    dbmate(url, "status")

    argv, env = seen.read_text().splitlines()
    assert "s3cret-pw" not in argv
    assert env == f"env: {url.libpq}"
