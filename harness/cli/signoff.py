"""`harness signoff`: the pre-release run. Bring the stack up if needed, seed if needed, run the
scenario suite, judge every threshold, and write reports/<time>/ with report.json, report.md,
report.html and junit.xml. Ends in PASS, WARN or FAIL (or a broken run), as an exit code CI can gate on.

Scenario checks (pytest assertions on behaviour: the proxy queued instead of refusing, no acknowledged
write was lost...) count as well: a failed check is a critical breach, a scenario that could not run at
all is a broken run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.backends import get_backend
from harness.backends.base import Reporter
from harness.backup.catalog import BackupError
from harness.backup.unit import after_seed
from harness.checklist import run_probes
from harness.cli.drained_pass import run_drained_pass
from harness.cli.scenario_progress import ENV_STEP_TIMES, thresholds_env
from harness.cli.spec import drift_record, drift_rows
from harness.config import Settings
from harness.data.app_role import app_credentials, data_root
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.endpoints import StackEndpoints
from harness.measure.results import ResultsWriter
from harness.measure.run_facts import run_facts
from harness.report import format_verdict_table, render_report
from harness.report.drained import drained_summary
from harness.report.text import checklist_summary
from harness.security.secret_scan import known_secrets, scan
from harness.spec.drift import DeploymentIds
from harness.thresholds import EXIT_BROKEN, EXIT_FAIL, EXIT_PASS, EXIT_WARN, ThresholdSet

# The scenario sizes and the seed profile each one needs (scenarios/conftest.py holds the knobs).
SIZE_SEED_PROFILES = {"ci": "ci", "signoff": "default"}
# pytest's own exit codes: 1 means tests ran and some failed; anything else means it could not run them.
PYTEST_TESTS_FAILED = 1


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


def run_scenarios(
    settings: Settings,
    scenarios: Path,
    results_path: Path,
    size: str,
    out_dir: Path,
    extra_args: list[str],
    thresholds_file: Path | None = None,
    threshold_overrides: Sequence[Path] = (),
    threshold_sets: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
    junit_name: str = "scenarios-junit.xml",
) -> ScenarioOutcome:
    junit = out_dir / junit_name
    env = {
        **os.environ,
        "HARNESS_RESULTS": str(results_path),
        "HARNESS_SCENARIO_SIZE": size,
        # The child resolves the same stack whatever its working directory or config file.
        "HARNESS_STATE_DIR": str(settings.state_dir),
        "HARNESS_BACKEND": settings.backend,
        # The scenarios size and deploy the unit the sign-off judges (its --use choices included).
        "HARNESS_SPEC_USE": settings.spec_use,
        # The progress plugin's estimate of time left comes from the last run of this size.
        ENV_STEP_TIMES: str(settings.state_dir / f"step-times-{size}.json"),
        # The running verdict judges the thresholds the final one will: the same file, overrides and --set.
        **thresholds_env(thresholds_file, threshold_overrides, threshold_sets),
    }
    if settings.spec_file is not None:
        env["HARNESS_SPEC_FILE"] = str(settings.spec_file)
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(scenarios),
        "-p",
        "no:cacheprovider",
        "-p",
        "harness.cli.scenario_progress",
        "-q",
        "-s",
        f"--junitxml={junit}",
        *extra_args,
    ]
    rc = subprocess.run(command, env=env).returncode
    passed, failed, errors, skipped = _read_junit(junit)
    if rc == 0:
        code = EXIT_PASS
    elif rc == PYTEST_TESTS_FAILED and not errors:
        code = EXIT_FAIL
    else:
        code = EXIT_BROKEN
    if rc not in (0, PYTEST_TESTS_FAILED) and not errors:
        errors = [f"pytest exited {rc} (no tests collected, interrupted or a usage error)"]
    return ScenarioOutcome(code, passed, failed, errors, skipped)


def ensure_stack(settings: Settings, report: Reporter) -> tuple[StackEndpoints, bool]:
    """The running stack, started if it was not; True when this call started it."""
    backend = get_backend(settings)
    endpoints = backend.endpoints()
    if endpoints is not None and backend.status().healthy:
        report(f"using the running {settings.backend} stack")
        return endpoints, False
    report(f"starting the {settings.backend} stack")
    return backend.up(report), True


def signoff(
    settings: Settings,
    thresholds: ThresholdSet,
    *,
    size: str,
    scenarios: Path,
    reports_root: Path,
    keep_up: bool,
    pytest_args: list[str],
    report: Reporter,
    thresholds_file: Path | None = None,
    threshold_overrides: Sequence[Path] = (),
    threshold_sets: Sequence[str] = (),
    drained: bool = False,
) -> int:
    began = time.monotonic()
    out_dir = reports_root / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=False)
    endpoints, started = ensure_stack(settings, report)
    try:
        profile = get_profile(SIZE_SEED_PROFILES[size])
        _, app_password = app_credentials(endpoints, settings.state_dir)
        seeded = seed(endpoints.direct, profile, data_root(settings.state_dir), app_password)
        report(seeded.summary())
        if not seeded.skipped:
            try:
                after_seed(settings, endpoints, report)
            except BackupError as exc:
                # The checklist's backup items then fail with what they find: the run itself goes on.
                report(f"the data is loaded, but the automated backup failed: {exc}")
        results_path = out_dir / "results.json"
        results = ResultsWriter.open(
            results_path,
            run={
                **run_facts(endpoints, Path.cwd()),
                "data_profile": profile.name,
                "scenario_size": size,
                # The unit spec's choices for this run (--use): the checklist decides with them too.
                "spec_use": settings.spec_use,
            },
        )
        seeded_at = time.monotonic()
        report("checking the unit against the deployment checklist (connectivity, pgvector, KMS, secrets)")
        results.update_run({"checks": run_probes(endpoints)})
        if settings.backend == "external":
            report("reading the deployment's settings against the unit spec (spec drift: describe calls only)")
            results.update_run(
                drift_record(drift_rows(settings.unit_spec(), endpoints.aws, thresholds, DeploymentIds()))
            )
        probed_at = time.monotonic()
        report(f"running scenarios ({size} size) from {scenarios}")
        outcome = run_scenarios(
            settings,
            scenarios,
            results_path,
            size,
            out_dir,
            pytest_args,
            thresholds_file,
            threshold_overrides,
            threshold_sets,
        )
        scenarios_done = time.monotonic()
        if drained:
            restore = not started or keep_up
            facts = run_drained_pass(
                settings,
                scenarios,
                out_dir,
                size,
                (thresholds_file, threshold_overrides, threshold_sets),
                restore=restore,
                report=report,
            )
            results.update_run({"drained_pass": facts})
        # The secret grep: first over what the report will be built from, then over the report itself.
        secrets = known_secrets(settings.state_dir, endpoints)
        roots = [out_dir, settings.state_dir / "logs", settings.state_dir / "lambda"]
        scanned, leaks = scan(roots, secrets)
        results.update_run(
            {
                "scenario_checks": outcome.as_facts(),
                "duration_s": round(scenarios_done - began, 1),
                # Where the time went; the report's own rendering (seconds) is not in it.
                "phases_s": {
                    "stack_and_seed": round(seeded_at - began, 1),
                    "checklist_probes": round(probed_at - seeded_at, 1),
                    "scenarios": round(scenarios_done - probed_at, 1),
                },
                "secret_scan": {"files": scanned, "secrets": len(secrets), "leaks": [str(leak) for leak in leaks]},
            }
        )
        rendered = render_report(results_path, out_dir, thresholds)
        leaks += scan([out_dir], secrets)[1]
    finally:
        if started and not keep_up:
            get_backend(settings).down(report)
    print(format_verdict_table(rendered.evaluation))
    drained_report = json.loads(rendered.files["report.json"].read_text()).get("drained_pass")
    if drained_report is not None:
        print(f"\n{drained_summary(drained_report)}")
    print(f"\n{checklist_summary(rendered.checklist)}")
    for item in rendered.checklist:
        if item.result.status.value in ("FAIL", "WARN"):
            print(f"  {item.result.status.value} {item.item.text}: {item.result.evidence}")
    print(
        f"\nscenario checks: {outcome.passed} passed, {len(outcome.failed)} failed, "
        f"{len(outcome.errors)} errors, {outcome.skipped} skipped"
    )
    for name in outcome.failed:
        print(f"  FAILED check: {name}")
    for name in outcome.errors:
        print(f"  BROKEN: {name}")
    unique = sorted(set(leaks), key=str)
    print(f"secret grep: {scanned} files, {len(secrets)} secrets, {len(unique)} leaks")
    for leak in unique:
        print(f"  LEAK: {leak}")
    code = max(rendered.exit_code, outcome.exit_code, EXIT_FAIL if unique else EXIT_PASS)
    print(
        f"\nsign-off (thresholds and scenario checks): {VERDICT_WORDS[code]} (exit {code}); "
        f"report: {rendered.files['report.html']}"
    )
    return code


VERDICT_WORDS = {EXIT_PASS: "PASS", EXIT_WARN: "WARN", EXIT_FAIL: "FAIL", EXIT_BROKEN: "BROKEN"}
