"""A team's path, end to end, with no code change: the example application in fixtures/example_app goes
through `harness seed --schema --data`, the vector-search scenarios and the cache scenario at the design
skew (its own cached reads), Locust's vector and cache users and a workload replay,
exactly as a user would drive them (the CLI, pytest and Locust as processes, HARNESS_WORKLOAD naming the
example's workload file). A throw-away stack of its own holds the example's data, so the session's stack
keeps the built-in application for the other tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.paths import FIXTURES_DIR, REPO_ROOT
from harness.workload.file import load_workload

pytestmark = pytest.mark.integration

EXAMPLE = FIXTURES_DIR / "example_app"


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def test_the_example_application_goes_through_seed_scenarios_locust_and_replay(isolated_stack, tmp_path):
    assert isolated_stack.harness("up").returncode == 0
    env = {**isolated_stack.env, "HARNESS_WORKLOAD": str(EXAMPLE / "workload.yaml")}

    seeded = isolated_stack.harness(
        "seed", "--schema", str(EXAMPLE / "migrations"), "--data", str(EXAMPLE / "data.yaml"), "--quiet", env=env
    )
    assert seeded.returncode == 0, seeded.stderr
    assert "products 3,000" in seeded.stdout

    results = tmp_path / "scenarios" / "results.json"
    scenarios = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "scenarios/test_vector_search.py",
            "scenarios/test_cache_hit_rate.py::test_hit_rate_at_the_design_skew",
        ],
        {**env, "HARNESS_RESULTS": str(results), "HARNESS_SCENARIO_SIZE": "ci"},
        timeout=300,
    )
    assert scenarios.returncode == 0, scenarios.stdout[-3000:]
    measured = json.loads(results.read_text())["measurements"]
    assert {
        "vector_search.latency_ms",
        "vector_search.recall_at_10",
        "vector_search.recall_curve",
        "cache.hit_rate_pct",
    } <= set(measured)

    for locustfile, metric in (("vector_search", "vector_search.latency_ms"), ("cache", "cache.hit_rate_pct")):
        locust_results = tmp_path / f"locust-{locustfile}" / "results.json"
        users = ["-u", "2", "-r", "2", "-t", "10s", "--results", str(locust_results)]
        locust = run(
            [sys.executable, "-m", "locust", "-f", f"locustfiles/{locustfile}.py", "--headless", *users],
            env,
            timeout=120,
        )
        # PASS, WARN or FAIL on a busy machine; BROKEN (5) would mean the requests never ran.
        assert locust.returncode in (0, 3, 4), locust.stderr[-3000:]
        locust_measured = json.loads(locust_results.read_text())["measurements"]
        assert locust_measured[metric]["entries"], f"Locust measured no {metric}"

    workload = tmp_path / "workload.yaml"
    shutil.copy(EXAMPLE / "workload.yaml", workload)
    params = isolated_stack.harness("workload", "params", str(workload), env=env)
    assert params.returncode == 0, params.stderr
    assert load_workload(workload).missing_params() == []

    replay_results = tmp_path / "replay" / "results.json"
    replay = isolated_stack.harness(
        "workload",
        "replay",
        str(workload),
        "--rate",
        "40",
        "--duration",
        "3",
        "--results",
        str(replay_results),
        env=env,
    )
    # The example's mix pins 1% of its calls on purpose (a SET and an advisory lock): a WARN at least.
    assert replay.returncode in (3, 4), replay.stdout + replay.stderr
    assert "workload.pinned_calls_pct" in replay.stdout and "product_search" in replay.stdout
    document = json.loads(replay_results.read_text())
    assert document["run"]["workload"]["captured_mean_ms"]["product_search"] == 3.1
    statements = document["measurements"]["workload.statement_ms"]["entries"]
    assert {e["labels"]["statement"] for e in statements} >= {"product_search", "customer_orders", "product_by_id"}
