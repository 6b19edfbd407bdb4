"""`harness signoff` end to end on a two-step scenario suite: its progress lines under a pseudo-terminal
(redrawn) and through a pipe (plain), the live checklist checks recorded, and the report's first section
the checklist. The suite measures nothing, so the verdict is BROKEN (exit 5), as it must be."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import Settings
from harness.data.loading import current_seed
from harness.endpoints import StackEndpoints
from harness.paths import REPO_ROOT

pytestmark = pytest.mark.integration

STEPS = """
import time

def test_first_step():
    time.sleep(1.5)

def test_second_step():
    time.sleep(0.2)
"""


def _command(stack: StackEndpoints, settings: Settings, tmp_path: Path, name: str) -> list[str]:
    scenarios = tmp_path / f"scenarios-{name}"
    scenarios.mkdir()
    (scenarios / "test_steps.py").write_text(STEPS)
    # The size whose seed profile is loaded already: a test must not replace a 100k-vector seed.
    state = current_seed(stack.direct)
    size = "signoff" if state is not None and state.profile == "default" else "ci"
    return [
        *(sys.executable, "-m", "harness.cli.main", "signoff", "--size", size),
        *("--scenarios", str(scenarios), "--reports", str(tmp_path / f"reports-{name}")),
        # The test's own stack, whatever the child's working directory.
        *("--state-dir", str(settings.state_dir), "--backend", settings.backend),
    ]


def _report(tmp_path: Path, name: str) -> dict:
    (directory,) = (tmp_path / f"reports-{name}").iterdir()
    return json.loads((directory / "report.json").read_text())


def test_signoff_redraws_a_live_step_line_on_a_terminal(
    stack: StackEndpoints, harness_settings: Settings, tmp_path, run_in_pty
):
    code, out = run_in_pty(_command(stack, harness_settings, tmp_path, "tty"), tmp_path)
    assert code == 5, out[-3000:]
    assert "\r\x1b[2K[scenarios] step 1/2 scenarios-tty/test_steps.py::test_first_step | elapsed" in out
    assert "step 2/2 scenarios-tty/test_steps.py::test_second_step passed" in out
    report = _report(tmp_path, "tty")
    items = {i["text"]: i for i in report["checklist"]}
    assert items["RDS PostgreSQL accessible via RDS Proxy"]["status"] == "PASS"
    assert items["pgvector extension installed and functional"]["status"] == "PASS"
    assert [s["step"].split("::")[1] for s in report["run"]["steps"]] == ["test_first_step", "test_second_step"]
    assert set(report["run"]["phases_s"]) == {"stack_and_seed", "checklist_probes", "scenarios"}


def test_signoff_prints_plain_step_lines_through_a_pipe(stack: StackEndpoints, harness_settings: Settings, tmp_path):
    command = _command(stack, harness_settings, tmp_path, "pipe")
    completed = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert completed.returncode == 5, completed.stderr[-3000:]
    lines = [line for line in completed.stderr.splitlines() if line.startswith("[scenarios] step")]
    assert len(lines) == 4 and "\x1b" not in completed.stderr
    assert lines[1].startswith("[scenarios] step 1/2 scenarios-pipe/test_steps.py::test_first_step passed in ")
    assert "so far: checks 1 passed" in lines[1]
    assert "checklist items:" in completed.stdout


def test_make_signoff_passes_the_progress_lines_and_the_verdict_through_a_pipe(
    stack: StackEndpoints, harness_settings: Settings, tmp_path
):
    command = _command(stack, harness_settings, tmp_path, "make")
    size = command[command.index("--size") + 1]
    arguments = shlex.join(command[command.index("--size") + 2 :])
    completed = subprocess.run(
        ["make", "--no-print-directory", "signoff", f"SIZE={size}", f"SIGNOFF_ARGS={arguments}"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    lines = [line for line in completed.stderr.splitlines() if line.startswith("[scenarios] step")]
    assert len(lines) == 4 and "\x1b" not in completed.stderr, completed.stderr[-3000:]
    # Node ids are relative to the directory make runs in.
    assert lines[3].startswith("[scenarios] step 2/2 ") and "test_steps.py::test_second_step passed in " in lines[3]
    assert f"running scenarios ({size} size)" in completed.stderr
    # The suite measures nothing, so the sign-off is BROKEN (exit 5); make fails and names that code.
    assert "sign-off (thresholds and scenario checks): BROKEN (exit 5)" in completed.stdout
    assert completed.returncode != 0 and "Error 5" in completed.stderr
    assert _report(tmp_path, "make")["run"]["scenario_size"] == size
