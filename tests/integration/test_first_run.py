"""A first run leaves the unit `harness seed` would: the scenarios seed an empty stack themselves (their
`seeded` fixture, the path a first `pytest scenarios` or sign-off takes) and the automated base backup
the checklist's backup items look for is there, as after `make up`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.paths import REPO_ROOT

pytestmark = pytest.mark.integration

CHECK = """
from harness.backup.catalog import list_backups
from harness.data.loading import current_seed
from harness.services.aws import backup_bucket


def test_the_fresh_seed_left_an_automated_backup_of_its_data(seeded, stack):
    backups = list_backups(stack.aws.client("s3"), backup_bucket(stack.aws.region))
    assert [b.kind for b in backups] == ["automated"], backups
    assert backups[0].dataset_key == current_seed(stack.direct).dataset_key
"""


def test_the_scenarios_own_seed_makes_the_automated_backup_harness_seed_makes(isolated_stack, tmp_path):
    (tmp_path / "test_first_seed.py").write_text(CHECK)
    env = {
        **isolated_stack.env,
        "HARNESS_SCENARIO_SIZE": "ci",
        "HARNESS_RESULTS": str(tmp_path / "results.json"),
    }
    # The scenarios' conftest as a plugin: its `seeded` fixture, on a stack the `stack` fixture starts empty.
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-p", "scenarios.conftest", "-p", "no:cacheprovider"]
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "1 passed" in completed.stdout
