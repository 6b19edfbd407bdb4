"""The sign-off's progress lines, driven through a short pytest run with the plugin `harness signoff`
loads: a redrawn live line under a pseudo-terminal, plain lines through a pipe, and the step times in the
results file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from harness.progress import StepProgress, clock

STEPS = """
import os
import time
from pathlib import Path


def test_first_step():
    # Held, when the test names a release file, until the test has seen what it waits for.
    release = os.environ.get("RELEASE_FIRST_STEP")
    deadline = time.monotonic() + 60
    while release and not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_second_step():
    assert False, "a scenario check that fails"


def test_third_step():
    pass
"""


def _command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    (tmp_path / "test_steps.py").write_text(STEPS)
    env = {
        **os.environ,
        "HARNESS_RESULTS": str(tmp_path / "results.json"),
        "HARNESS_STEP_TIMES": str(tmp_path / "step-times.json"),
    }
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-s", "-p", "no:cacheprovider"]
    return [*command, "-p", "harness.signoff.progress"], env


def test_under_a_terminal_the_step_line_is_redrawn_while_the_step_runs(tmp_path, run_in_pty):
    command, env = _command(tmp_path)
    release = tmp_path / "release"
    first_step_line = "step 1/3 test_steps.py::test_first_step | elapsed"

    def release_after_a_redraw(out: str) -> None:
        # The line drawn at the step's start and once more by the ticker: the step may end.
        if out.count(first_step_line) >= 2:
            release.touch()

    _, out = run_in_pty(
        command, tmp_path, {**env, "RELEASE_FIRST_STEP": str(release)}, timeout_s=120, on_output=release_after_a_redraw
    )
    assert "\r\x1b[2K[scenarios] step 1/3 " in out
    assert out.count(first_step_line) >= 2
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
    assert run["steps"][1]["outcome"] == "failed"
    times = json.loads((tmp_path / "step-times.json").read_text())
    assert times == {step["step"]: step["seconds"] for step in run["steps"]}
    # Last run's times, made long enough to read on the line whatever this machine's speed.
    (tmp_path / "step-times.json").write_text(json.dumps({step: 100.0 for step in times}))
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    first_line = next(line for line in second.stderr.splitlines() if line.startswith("[scenarios] step 1/3"))
    # With last run's times the estimate exists from the first step: the three steps' 100 s.
    left = re.search(r"~(\d+):(\d\d) left", first_line)
    assert left is not None, first_line
    assert 290 <= int(left.group(1)) * 60 + int(left.group(2)) <= 300, first_line


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


def test_the_running_verdict_judges_the_thresholds_with_the_runs_overrides_sets_and_spec_choices(tmp_path):
    from harness.signoff.progress import thresholds_env, thresholds_from_env
    from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

    override = tmp_path / "override.yaml"
    override.write_text("schema_version: 1\noverrides:\n  proxy.acquire_ms:\n    warning: p95 < 7ms\n")
    env = {
        **thresholds_env(DEFAULT_THRESHOLDS_FILE, [override], ["proxy.acquire_ms:critical=p95 < 9ms"]),
        "HARNESS_SPEC_USE": "cost.budget_critical_usd=45",
    }
    judged = thresholds_from_env(env)
    assert judged is not None
    by_id = judged.by_id()
    assert (by_id["proxy.acquire_ms"].level("warning"), by_id["proxy.acquire_ms"].level("critical")) == (7, 9)
    assert by_id["cost.monthly_usd"].level("critical") == 45
    plain = thresholds_from_env({})
    assert plain is not None and plain.by_id()["proxy.acquire_ms"].level("critical") == 100
    # A --set the thresholds refuse leaves the running verdict to the final judgement, which reports it.
    assert thresholds_from_env(thresholds_env(None, [], ["no.such.id=p95 < 1ms"])) is None


def test_without_history_the_estimate_comes_from_the_sizes_caps_scaled_by_what_this_run_used():
    progress = StepProgress("x", 3, stream=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    progress.caps = {"a": 100.0, "b": 200.0, "c": 300.0}
    progress.start_step("a", ["b", "c"])
    left = progress.left_s()
    bound = progress.bound_s()
    # Nothing timed yet: every step at its cap, which is also the bound.
    assert left is not None and 599 < left <= 600
    assert bound is not None and 599 < bound <= 600
    progress.end_step("passed", "")
    progress.done["a"] = 25.0  # a used a quarter of its cap
    progress.start_step("b", ["c"])
    left = progress.left_s()
    assert left is not None and 124 < left <= 125  # (200 + 300) x 0.25
    bound = progress.bound_s()
    assert bound is not None and 499 < bound <= 500
    assert "(at most 8:" in progress.line()


def test_a_step_without_a_cap_leaves_the_bound_unknown():
    progress = StepProgress("x", 2, stream=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    progress.caps = {"a": 100.0}
    progress.start_step("a", ["b"])
    assert progress.bound_s() is None and "at most" not in progress.line()


def test_the_caps_the_scenarios_declare_reach_the_progress_line(tmp_path):
    command, env = _command(tmp_path)
    (tmp_path / "conftest.py").write_text(
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        item.user_properties.append(('time_cap_s', 120.0))\n"
    )
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    first = next(line for line in completed.stderr.splitlines() if line.startswith("[scenarios] step 1/3"))
    # No history: three steps at their 2-minute caps, and the same as the bound.
    assert "~6:00 left (at most 6:00 by the size's caps)" in first, first


class FakeClock:
    """The estimator's clock, moved by the test: no sleeping, no dependence on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_first_run_estimates_from_the_plan_at_the_pace_this_run_keeps_against_it():
    clock = FakeClock()
    progress = StepProgress("x", 3, stream=open(os.devnull, "w"), clock=clock)  # noqa: SIM115 - closed with the process
    progress.planned = {"a": 10.0, "b": 100.0, "c": 50.0}
    progress.caps = {"b": 3600.0}
    progress.start_step("a", ["b", "c"])
    # From the first step: the plan's 160 s, not b's hour-long cap.
    assert progress.left_s() == 160.0
    clock.now += 4.0
    assert progress.left_s() == 156.0
    clock.now += 16.0  # a took twice its plan: this machine is slower than the plan's
    progress.end_step("passed", "")
    assert progress.pace() == 2.0
    progress.start_step("b", ["c"])
    assert progress.left_s() == 300.0
    clock.now += 50.0
    assert progress.left_s() == 250.0
    assert "~4:10 left (at most" not in progress.line() and "~4:10 left" in progress.line()


def test_this_machines_last_run_wins_over_the_plan_and_a_step_outside_the_plan_uses_its_cap():
    clock = FakeClock()
    progress = StepProgress("x", 3, stream=open(os.devnull, "w"), clock=clock)  # noqa: SIM115 - closed with the process
    progress.expected = {"b": 30.0}
    progress.planned = {"a": 10.0, "b": 100.0}
    progress.caps = {"c": 200.0}
    progress.start_step("a", ["b", "c"])
    assert progress.left_s() == 10.0 + 30.0 + 200.0
    clock.now += 5.0  # a took half its plan; c's cap is scaled by the caps' own ratio, not by the plan's pace
    progress.end_step("passed", "")
    progress.start_step("b", ["c"])
    assert progress.pace() == 0.5 and progress.left_s() == 30.0 + 200.0
