"""The sign-off's progress lines, driven through a short pytest run with the plugin `harness signoff`
loads: a redrawn live line under a pseudo-terminal, plain lines through a pipe, and the step times in the
results file."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from harness.measure.progress import StepProgress, clock

STEPS = """
import time

def test_first_step():
    time.sleep(1.6)

def test_second_step():
    time.sleep(0.2)
    assert False, "a scenario check that fails"

def test_third_step():
    time.sleep(0.2)
"""


def _command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    (tmp_path / "test_steps.py").write_text(STEPS)
    env = {
        **os.environ,
        "HARNESS_RESULTS": str(tmp_path / "results.json"),
        "HARNESS_STEP_TIMES": str(tmp_path / "step-times.json"),
    }
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-s", "-p", "no:cacheprovider"]
    return [*command, "-p", "harness.cli.scenario_progress"], env


def _run_in_pty(command: list[str], env: dict[str, str], cwd: Path) -> str:
    master, slave = pty.openpty()
    process = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    return b"".join(chunks).decode(errors="replace")


def test_under_a_terminal_the_step_line_is_redrawn_while_the_step_runs(tmp_path):
    command, env = _command(tmp_path)
    out = _run_in_pty(command, env, tmp_path)
    assert "\r\x1b[2K[scenarios] step 1/3 " in out
    # The first step sleeps 1.6 s and the line is redrawn every second: at least two draws of step 1/3.
    assert out.count("step 1/3 test_steps.py::test_first_step | elapsed") >= 2
    assert "step 3/3 test_steps.py::test_third_step passed" in out
    assert "so far: checks 1 passed, 1 failed" in out


def test_through_a_pipe_each_step_prints_plain_start_and_end_lines(tmp_path):
    command, env = _command(tmp_path)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert completed.returncode == 1  # the failing check fails the run
    lines = [line for line in completed.stderr.splitlines() if line.startswith("[scenarios]")]
    assert "\r" not in completed.stderr and "\x1b" not in completed.stderr
    # Times vary on a shared machine: the lines are compared without them.
    assert [re.sub(r" in [0-9.]+ s$", " in N s", line.split(" | ")[0]) for line in lines] == [
        "[scenarios] step 1/3 test_steps.py::test_first_step",
        "[scenarios] step 1/3 test_steps.py::test_first_step passed in N s",
        "[scenarios] step 2/3 test_steps.py::test_second_step",
        "[scenarios] step 2/3 test_steps.py::test_second_step failed in N s",
        "[scenarios] step 3/3 test_steps.py::test_third_step",
        "[scenarios] step 3/3 test_steps.py::test_third_step passed in N s",
    ]
    # No history on the first run: the first step cannot guess, later ones use the mean so far.
    assert "time left unknown" in lines[0]
    assert "left" in lines[2] and "unknown" not in lines[2]


def test_step_times_go_to_the_results_file_and_estimate_the_next_run(tmp_path):
    command, env = _command(tmp_path)
    subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    run = json.loads((tmp_path / "results.json").read_text())["run"]
    assert [s["step"].split("::")[1] for s in run["steps"]] == [
        "test_first_step",
        "test_second_step",
        "test_third_step",
    ]
    assert run["steps"][0]["seconds"] >= 1.5 and run["steps"][1]["outcome"] == "failed"
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    first_line = next(line for line in second.stderr.splitlines() if line.startswith("[scenarios] step 1/3"))
    # With last run's times the estimate exists from the first step: about 1.6 + 0.2 + 0.2 s.
    left = re.search(r"~(\d+):(\d\d) left", first_line)
    assert left is not None, first_line
    assert 1 <= int(left.group(1)) * 60 + int(left.group(2)) <= 15


def test_the_left_estimate_prefers_last_runs_times_over_this_runs_mean():
    progress = StepProgress("x", 3, stream=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    progress.expected = {"b": 100.0}
    progress.start_step("a", ["b", "c"])
    progress.end_step("passed", "")
    progress.durations = [10.0]
    progress.start_step("b", ["c"])
    left = progress.left_s()
    assert left is not None and 105 < left <= 110  # b from history (100, minus its elapsed) + c at the mean (10)
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"
