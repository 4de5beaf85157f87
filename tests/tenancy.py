"""Helpers for the tenant and API-key tests: the `m3w` CLI as users run it, and tenants with
fresh keys made through it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from service.config import DatabaseUrl
from tests.servers import REPO


def m3w(url: DatabaseUrl | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`m3w <args>` in a subprocess against `url`, none of the caller's M3W_/DATABASE_
    variables leaking in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("M3W_", "DATABASE_"))}
    if url is not None:
        clean["DATABASE_URL"] = url.libpq
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def new_tenant(url: DatabaseUrl, prefix: str = "app") -> str:
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    done = m3w(url, "tenants", "create", slug)
    assert done.returncode == 0, done.stderr
    return slug


def new_key(url: DatabaseUrl, tenant: str, *options: str) -> str:
    done = m3w(url, "keys", "create", "--tenant", tenant, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
