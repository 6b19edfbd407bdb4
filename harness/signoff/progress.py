"""A pytest plugin `harness signoff` loads into its scenario run (`-p harness.signoff.progress`): a
live line per scenario step (step i of n, elapsed, estimated time left, the running verdict), and each
step's wall time recorded in the results file (run.steps) so the report and the closing note can say
where the sign-off's time went.

The estimate of time left uses the step times of the previous run of the same size (kept in
<state_dir>/step-times-<size>.json); for a step this machine never timed, the plan the scenarios ship (a
reference run's time, a user property they set, PLANNED_PROPERTY) at the pace this run keeps against it;
for a step without one, its cap by the size's limits (TIME_CAP_PROPERTY) scaled by the share of their caps
this run's steps took, and the mean of this run's steps for a step with none. The caps also bound the time
left.
The running verdict counts the scenario checks so far and judges the thresholds whose metrics the
results file already holds.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.config import ConfigError, resolve_settings
from harness.measure.results import ResultsError, ResultsWriter, load_results
from harness.progress import StepProgress
from harness.thresholds import Status, ThresholdConfigError, ThresholdSet, evaluate, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

# Set by `harness signoff` for its child pytest.
ENV_THRESHOLDS = "HARNESS_PROGRESS_THRESHOLDS"
ENV_THRESHOLD_OVERRIDES = "HARNESS_PROGRESS_OVERRIDES"  # override files, os.pathsep between them
ENV_THRESHOLD_SETS = "HARNESS_PROGRESS_SETS"  # the --set strings, a JSON list
ENV_STEP_TIMES = "HARNESS_STEP_TIMES"
# A scenario step's cap in seconds by its size's limits, as a user property the scenarios' conftest sets
# (its load loops times each loop's time cap); the estimate of time left uses it before any history exists.
TIME_CAP_PROPERTY = "time_cap_s"
# A scenario step's planned seconds (its time in a reference run of its size), as a user property the
# scenarios' conftest sets: a first run's estimate of time left comes from it, not from the caps.
PLANNED_PROPERTY = "planned_s"


def thresholds_env(
    thresholds_file: Path | None, overrides: Sequence[Path] = (), sets: Sequence[str] = ()
) -> dict[str, str]:
    """What the sign-off tells this plugin so its running verdict judges the thresholds the final one will."""
    env = {
        ENV_THRESHOLD_OVERRIDES: os.pathsep.join(str(p.resolve()) for p in overrides),
        ENV_THRESHOLD_SETS: json.dumps(list(sets)),
    }
    if thresholds_file is not None:
        env[ENV_THRESHOLDS] = str(thresholds_file.resolve())
    return env


def thresholds_from_env(environ: Mapping[str, str]) -> ThresholdSet | None:
    """The thresholds `thresholds_env` named (file, overrides, --set, the run's unit spec); None when they
    cannot be read: the sign-off judges them at the end and reports the problem there."""
    try:
        overrides = [Path(p) for p in environ.get(ENV_THRESHOLD_OVERRIDES, "").split(os.pathsep) if p]
        sets = json.loads(environ.get(ENV_THRESHOLD_SETS) or "[]")
        if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
            return None
        return load_thresholds(
            Path(environ.get(ENV_THRESHOLDS, str(DEFAULT_THRESHOLDS_FILE))),
            overrides,
            sets,
            unit_facts=resolve_settings(environ=environ).unit.facts,
        )
    except (ThresholdConfigError, ConfigError, OSError, ValueError):
        return None


class ScenarioProgress:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.items: list[str] = []
        self.outcomes: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        self.steps: list[dict[str, Any]] = []
        self.progress: StepProgress | None = None
        self.load_at_start: list[float] = []
        self.results_path = os.environ.get("HARNESS_RESULTS")
        self.times_path = Path(os.environ[ENV_STEP_TIMES]) if os.environ.get(ENV_STEP_TIMES) else None
        self.thresholds = thresholds_from_env(os.environ)
        self._failed_now = False
        self._outcome = "passed"

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.items = [item.nodeid for item in items]

    def pytest_runtestloop(self, session: pytest.Session) -> None:
        # After deselection (-k), so n is what will run.
        self.items = [item.nodeid for item in session.items]
        self.progress = StepProgress("scenarios", len(self.items), stream=sys.__stderr__ or sys.stderr)
        self.load_at_start = [round(x, 2) for x in os.getloadavg()]
        self.progress.expected = self._previous_times()
        self.progress.planned = _seconds_property(session.items, PLANNED_PROPERTY)
        self.progress.caps = _seconds_property(session.items, TIME_CAP_PROPERTY)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.progress is None:
            return
        self._failed_now = False
        self._outcome = "passed"
        position = self.items.index(nodeid) if nodeid in self.items else len(self.items)
        self.progress.start_step(nodeid, self.items[position + 1 :])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._failed_now = True
            self._outcome = "error" if report.when != "call" else "failed"
        elif report.skipped and report.when in ("setup", "call"):
            self._outcome = "skipped"
        elif report.when == "call" and not self._failed_now:
            self._outcome = "passed"

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if self.progress is None:
            return
        outcome = self._outcome
        self.outcomes[outcome] += 1
        seconds = self.progress.end_step(outcome, self.verdict_so_far())
        self.steps.append({"step": nodeid, "seconds": round(seconds, 2), "outcome": outcome})

    def verdict_so_far(self) -> str:
        checks = ", ".join(f"{n} {name}" for name, n in self.outcomes.items() if n)
        text = f"checks {checks}"
        judged = self._thresholds_so_far()
        return text + (f"; thresholds {judged}" if judged else "")

    def _thresholds_so_far(self) -> str:
        if self.thresholds is None or not self.results_path or not Path(self.results_path).exists():
            return ""
        try:
            results = load_results(self.results_path)
        except (ResultsError, OSError):
            return ""
        measured = [r for r in evaluate(self.thresholds, results) if results.get(r.threshold.metric) is not None]
        counts = {s: sum(r.status is s for r in measured) for s in Status}
        return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "none measured yet"

    def _previous_times(self) -> dict[str, float]:
        if self.times_path is None or not self.times_path.exists():
            return {}
        try:
            return {str(k): float(v) for k, v in json.loads(self.times_path.read_text()).items()}
        except (ValueError, OSError, AttributeError):
            return {}

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.progress is None:
            return
        self.progress.close()
        total = sum(step["seconds"] for step in self.steps)
        if self.results_path and self.steps:
            # The machine's load while the steps ran: a time from a busy shared machine is not a quiet one's.
            facts = {
                "steps": self.steps,
                "steps_total_s": round(total, 1),
                "load_average": {"start": self.load_at_start, "end": [round(x, 2) for x in os.getloadavg()]},
            }
            try:
                ResultsWriter.open(self.results_path, run=facts)
            except (ResultsError, OSError) as exc:
                print(f"step times not recorded: {exc}", file=sys.stderr)
        if self.times_path is not None and self.steps:
            times = {**self._previous_times(), **{s["step"]: s["seconds"] for s in self.steps}}
            self.times_path.parent.mkdir(parents=True, exist_ok=True)
            self.times_path.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")


def _seconds_property(items: Sequence[pytest.Item], name: str) -> dict[str, float]:
    """Step -> the positive number of seconds its user property `name` holds."""
    return {
        item.nodeid: float(value)
        for item in items
        for key, value in item.user_properties
        if key == name and isinstance(value, int | float) and value > 0
    }


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ScenarioProgress(config), "harness-scenario-progress")
