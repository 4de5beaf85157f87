"""The benchmark scripts are not run in `make test` (they take minutes and print figures), but
they must keep up with the code they drive: each one imports and answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.servers import REPO


@pytest.mark.parametrize(
    "module", ["ingest", "soak", "fuzz", "dashboards", "profile", "instances", "commit_path"]
)
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


def _paced_run(cpu_ms: tuple[float, float], requests: int = 1000):
    from bench.ingest import WrkResult

    return WrkResult(requests, 1_000_000, requests, 0, 0, 1000, 2000, 3000, cpu_ms)


@pytest.mark.parametrize(
    ("unlimited", "limited", "cost", "per_round"),
    [
        # Service + PostgreSQL CPU per request: 1.0 ms without the limit, 1.03 with it.
        ([(0.8, 0.2)] * 3, [(0.83, 0.2)] * 3, 0.03, [0.03] * 3),
        # Rounds that disagree: the cost is over all rounds, each round's cost is its own.
        ([(1.0, 0.0), (1.0, 0.0)], [(1.1, 0.0), (0.9, 0.0)], 0.0, [0.1, -0.1]),
    ],
)
def test_the_limiter_cost_is_cpu_per_request_limited_over_unlimited(
    unlimited, limited, cost, per_round
):
    """bench.ingest --rate-limit judges the limiter on this figure: it must be the one the
    README describes (CPU of the service and PostgreSQL together), with a bound that widens
    with the scatter of the rounds."""
    from bench.ingest import limiter_cost

    paced = {
        False: [_paced_run(cpu) for cpu in unlimited],
        True: [_paced_run(cpu) for cpu in limited],
    }
    got_cost, margin, got_rounds = limiter_cost(paced)
    assert got_cost == pytest.approx(cost)
    assert got_rounds == pytest.approx(per_round)
    scatter = max(per_round) - min(per_round)
    assert (margin == pytest.approx(0.0)) == (scatter == 0)
