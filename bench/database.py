"""The benchmarks' database: an embedded PostgreSQL in a scratch directory, migrated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.config import DatabaseUrl
from service.embedded_db import EmbeddedPostgres
from service.migrations import dbmate
from tests.servers import free_port


@dataclass(frozen=True)
class BenchDatabase:
    url: DatabaseUrl
    postmaster_pid: int  # whose process tree's CPU time is PostgreSQL's


@contextmanager
def migrated_postgres(directory: Path, name: str = "bench") -> Iterator[BenchDatabase]:
    """A new PostgreSQL cluster in `directory`, database `name` migrated, running until
    the block ends."""
    database = EmbeddedPostgres(directory / "pgdata", free_port(), database=name)
    with database.running() as url:
        dbmate(url, "up")
        print(f"embedded PostgreSQL ready on port {database.port}", flush=True)
        postmaster = int((directory / "pgdata" / "postmaster.pid").read_text().split()[0])
        yield BenchDatabase(url, postmaster)
