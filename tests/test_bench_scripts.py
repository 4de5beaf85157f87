"""The benchmark scripts are not run in `make test` (they take minutes and print figures), but
they must keep up with the code they drive: each one imports and answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import REPO


@pytest.mark.parametrize("module", ["ingest", "soak", "fuzz", "dashboards", "profile", "instances"])
def test_bench_script_starts(module):
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_the_dashboard_bench_chooses_a_value_for_every_dashboard_variable():
    """bench.dashboards renders every panel as Grafana would: a variable added to a dashboard
    and not to its selection fails only minutes into a run."""
    from bench.dashboards import SELECTION
    from tests.grafana_sql import dashboard_variables, load_dashboards

    for uid, dashboard in load_dashboards().items():
        missing = set(dashboard_variables(dashboard)) - set(SELECTION)
        assert not missing, f"dashboard {uid}: bench.dashboards chooses nothing for {missing}"
