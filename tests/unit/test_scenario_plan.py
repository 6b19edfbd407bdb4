"""The plan the scenarios ship for a first run's estimate of time left (scenarios/step_plan.yaml) names the
steps each size runs: a step renamed or added without its planned time would fall back to its cap, which
is what made a first sign-off's estimate five times too long."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from harness.paths import REPO_ROOT

PLAN = yaml.safe_load((REPO_ROOT / "scenarios" / "step_plan.yaml").read_text())


def _collected(size: str) -> set[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env={**os.environ, "HARNESS_SCENARIO_SIZE": size},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return {line.removeprefix("scenarios/") for line in completed.stdout.splitlines() if "::" in line}


@pytest.mark.parametrize("size", sorted(PLAN))
def test_the_plan_times_every_step_of_its_size_and_no_step_that_is_gone(size):
    planned = set(PLAN[size])
    collected = _collected(size)
    assert not collected - planned, f"steps without a planned time: {sorted(collected - planned)}"
    assert not planned - collected, f"planned steps that no longer exist: {sorted(planned - collected)}"
    assert all(seconds > 0 for seconds in PLAN[size].values())
