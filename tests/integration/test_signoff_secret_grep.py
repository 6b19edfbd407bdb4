"""The secret grep over a whole sign-off's outputs (issue 13's "Done means"): `harness signoff` greps its
results, report, the stack's logs and Lambda state for every secret the unit holds, and a leak is named
(file and which secret, never the value) in its output and results. A clean run finds none; a run whose
scenario writes the Redis password to a log is caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Settings
from harness.data.loading import current_seed
from harness.endpoints import StackEndpoints
from harness.security.secret_scan import known_secrets

pytestmark = pytest.mark.integration

CLEAN = """
def test_a_step_that_uses_the_unit(stack):
    client = stack.redis.client()
    try:
        assert client.ping()
    finally:
        client.close()
    with stack.proxy.connect(autocommit=True, prepare_threshold=None) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
"""

LEAKY = """
import json, os
from pathlib import Path

def test_a_step_that_logs_a_password():
    state = Path(os.environ["HARNESS_STATE_DIR"])
    password = json.loads((state / "secrets.json").read_text())["redis_password"]
    (state / "logs" / "LEAK_LOG").write_text(f"connecting with redis password {password}\\n")
"""
LEAK_LOG = "scenario-secret-grep-test.log"


def signoff(
    stack: StackEndpoints, settings: Settings, tmp_path: Path, steps: str
) -> tuple[subprocess.CompletedProcess, dict]:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "test_steps.py").write_text(steps.replace("LEAK_LOG", LEAK_LOG))
    state = current_seed(stack.direct)
    size = "signoff" if state is not None and state.profile == "default" else "ci"
    command = [
        *(sys.executable, "-m", "harness.cli.main", "signoff", "--size", size),
        *("--scenarios", str(scenarios), "--reports", str(tmp_path / "reports")),
        *("--state-dir", str(settings.state_dir), "--backend", settings.backend),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    (run_dir,) = (tmp_path / "reports").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    return completed, results


@pytest.fixture
def local_stack(stack: StackEndpoints) -> StackEndpoints:
    if stack.backend != "embedded":
        pytest.skip("the leaky step writes into the embedded stack's log directory")
    return stack


@pytest.fixture
def leak_log(harness_settings: Settings):
    path = harness_settings.state_dir / "logs" / LEAK_LOG
    yield path
    path.unlink(missing_ok=True)


def test_a_clean_signoff_greps_every_output_for_every_secret_and_finds_none(local_stack, harness_settings, tmp_path):
    completed, results = signoff(local_stack, harness_settings, tmp_path, CLEAN)
    scan = results["run"]["secret_scan"]
    secrets = known_secrets(harness_settings.state_dir, local_stack)
    # The master, Redis and application-role passwords at least, and every Secrets Manager version.
    assert scan["secrets"] == len(secrets) >= 3, scan
    assert scan["files"] > 0 and scan["leaks"] == [], scan
    assert "secret grep: " in completed.stdout and ", 0 leaks" in completed.stdout, completed.stdout[-2000:]
    assert "LEAK:" not in completed.stdout


def test_a_signoff_whose_step_logs_a_password_names_the_leak_without_the_value(
    local_stack, harness_settings, tmp_path, leak_log
):
    completed, results = signoff(local_stack, harness_settings, tmp_path, LEAKY)
    assert leak_log.is_file(), completed.stderr[-2000:]
    leaks = results["run"]["secret_scan"]["leaks"]
    # The one planted value, under every label that holds it (the state file, and any secret that copies it).
    assert all(leak.startswith(f"{leak_log}: contains ") for leak in leaks), leaks
    assert f"{leak_log}: contains secrets.json:redis_password" in leaks, leaks
    assert f"LEAK: {leak_log}: contains" in completed.stdout
    password = local_stack.redis.password.reveal()
    assert password not in completed.stdout + completed.stderr
    assert completed.returncode != 0
