"""The sign-off's scenario runner: one pass of the scenario suite as a child pytest, with the progress plugin
loaded, read back from its JUnit file as a scenario outcome.

The runner is built once per sign-off from its settings and thresholds (`scenario_runner`), so every pass
(the fresh one, the drained one) hands the child the same stack, unit spec and thresholds.

Scenario checks (pytest assertions on behaviour: the proxy queued instead of refusing, no acknowledged
write was lost...) count as well: a failed check is a critical breach, a scenario that could not run at
all is a broken run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.config import Settings
from harness.signoff.progress import ENV_STEP_TIMES, thresholds_env
from harness.thresholds import ExitCode

# pytest's own exit codes: 1 means tests ran and some failed; anything else means it could not run them.
PYTEST_TESTS_FAILED = 1
SCENARIOS_JUNIT = "scenarios-junit.xml"


@dataclass(frozen=True)
class ScenarioOutcome:
    exit_code: int
    passed: int
    failed: list[str]
    errors: list[str]
    skipped: int

    def as_facts(self) -> dict[str, object]:
        return {"passed": self.passed, "failed": self.failed, "errors": self.errors, "skipped": self.skipped}


def _read_junit(path: Path) -> tuple[int, list[str], list[str], int]:
    if not path.exists():
        return 0, [], [], 0
    passed, failed, errors, skipped = 0, [], [], 0
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            failed.append(name)
        elif case.find("error") is not None:
            errors.append(name)
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, errors, skipped


@dataclass(frozen=True)
class ScenarioRunner:
    """Runs the suite in `scenarios` at `size`; `env` is what every pass tells its child pytest."""

    scenarios: Path
    size: str
    env: Mapping[str, str]
    # The progress plugin's estimate of time left comes from the last run of this size.
    step_times: Path

    def run(
        self,
        results_path: Path,
        out_dir: Path,
        extra_args: Sequence[str],
        *,
        extra_env: Mapping[str, str] | None = None,
        junit_name: str = SCENARIOS_JUNIT,
    ) -> ScenarioOutcome:
        junit = out_dir / junit_name
        env = {
            **os.environ,
            "HARNESS_RESULTS": str(results_path),
            "HARNESS_SCENARIO_SIZE": self.size,
            ENV_STEP_TIMES: str(self.step_times),
            **self.env,
            **(extra_env or {}),
        }
        # The scenarios are the package's, not the working directory's project: no ini file, conftest or rootdir
        # of the directory the user runs from (a team's own pyproject.toml or conftest.py) applies to them. The
        # rootdir is the scenarios directory's parent, so steps keep their names (scenarios/test_x.py::...).
        scenarios_root = self.scenarios if self.scenarios.is_dir() else self.scenarios.parent
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(self.scenarios),
            "-c",
            os.devnull,
            "--rootdir",
            str(scenarios_root.parent),
            "--confcutdir",
            str(scenarios_root),
            "-ra",
            "-p",
            "no:cacheprovider",
            "-p",
            "harness.signoff.progress",
            "-q",
            "-s",
            f"--junitxml={junit}",
            *extra_args,
        ]
        rc = subprocess.run(command, env=env).returncode
        passed, failed, errors, skipped = _read_junit(junit)
        if rc == 0:
            code = ExitCode.PASS
        elif rc == PYTEST_TESTS_FAILED and not errors:
            code = ExitCode.FAIL
        else:
            code = ExitCode.BROKEN
        if rc not in (0, PYTEST_TESTS_FAILED) and not errors:
            errors = [f"pytest exited {rc} (no tests collected, interrupted or a usage error)"]
        return ScenarioOutcome(code, passed, failed, errors, skipped)


def scenario_runner(
    settings: Settings,
    scenarios: Path,
    size: str,
    thresholds_file: Path | None = None,
    threshold_overrides: Sequence[Path] = (),
    threshold_sets: Sequence[str] = (),
) -> ScenarioRunner:
    """The runner for one sign-off, its child environment read from `settings` once."""
    env = {
        # The child resolves the same stack whatever its working directory or config file.
        "HARNESS_STATE_DIR": str(settings.state_dir),
        "HARNESS_BACKEND": settings.backend,
        # The scenarios size and deploy the unit the sign-off judges (its --use choices included).
        "HARNESS_SPEC_USE": settings.spec_use,
        # The running verdict judges the thresholds the final one will: the same file, overrides and --set.
        **thresholds_env(thresholds_file, threshold_overrides, threshold_sets),
    }
    if settings.spec_file is not None:
        env["HARNESS_SPEC_FILE"] = str(settings.spec_file)
    return ScenarioRunner(scenarios, size, env, settings.state_dir / f"step-times-{size}.json")
