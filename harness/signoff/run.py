"""`harness signoff`: the pre-release run. Bring the stack up if needed, seed if needed, run the
scenario suite, judge every threshold, and write reports/<time>/ with report.json, report.md,
report.html and junit.xml. Ends in PASS, WARN or FAIL (or a broken run), as an exit code CI can gate on.

Scenario checks (pytest assertions on behaviour: the proxy queued instead of refusing, no acknowledged
write was lost...) count as well: a failed check is a critical breach, a scenario that could not run at
all is a broken run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from harness.backends import get_backend
from harness.backends.base import Backend, Reporter
from harness.backup.catalog import BackupError
from harness.backup.unit import after_seed
from harness.checklist import run_probes
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
from harness.signoff.drained import run_drained_pass
from harness.signoff.scenarios import scenario_runner
from harness.spec.drift import ALARM_METRICS, DeploymentIds, check_drift, drift_record
from harness.thresholds import ExitCode, ThresholdSet

# The scenario sizes and the seed profile each one needs (scenarios/conftest.py holds the knobs).
SIZE_SEED_PROFILES = {"ci": "ci", "signoff": "default"}


def ensure_stack(backend: Backend, report: Reporter) -> tuple[StackEndpoints, bool]:
    """The running stack, started if it was not; True when this call started it."""
    endpoints = backend.endpoints()
    if endpoints is not None and backend.status().healthy:
        report(f"using the running {backend.name} stack")
        return endpoints, False
    report(f"starting the {backend.name} stack")
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
    # The settings are read here, once: what runs below gets the backend and the runner built from them.
    backend = get_backend(settings)
    runner = scenario_runner(settings, scenarios, size, thresholds_file, threshold_overrides, threshold_sets)
    endpoints, started = ensure_stack(backend, report)
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
        if backend.name == "external":
            report("reading the deployment's settings against the unit spec (spec drift: describe calls only)")
            results.update_run(
                drift_record(
                    check_drift(
                        settings.unit_spec(),
                        endpoints.aws.client,
                        thresholds.alarm_levels(ALARM_METRICS),
                        DeploymentIds(),
                    )
                )
            )
        probed_at = time.monotonic()
        report(f"running scenarios ({size} size) from {scenarios}")
        outcome = runner.run(results_path, out_dir, pytest_args)
        scenarios_done = time.monotonic()
        if drained:
            # The unit goes back to its configured credits unless this run is about to stop it anyway.
            restore = not started or keep_up
            facts = run_drained_pass(
                backend,
                runner,
                out_dir,
                step_cap_s=settings.drained_step_cap_s,
                credits_after=settings.cpu_credits if restore else None,
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
                # Read back after the scenarios: the limits the containers' kernel held while they ran.
                **({"containers": held} if (held := backend.container_sizing()) else {}),
            }
        )
        rendered = render_report(results_path, out_dir, thresholds)
        leaks += scan([out_dir], secrets)[1]
    finally:
        if started and not keep_up:
            backend.down(report)
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
    code = max(rendered.exit_code, outcome.exit_code, ExitCode.FAIL if unique else ExitCode.PASS)
    print(
        f"\nsign-off (thresholds and scenario checks): {VERDICT_WORDS[code]} (exit {code}); "
        f"report: {rendered.files['report.html']}"
    )
    return code


VERDICT_WORDS: dict[int, str] = {
    ExitCode.PASS: "PASS",
    ExitCode.WARN: "WARN",
    ExitCode.FAIL: "FAIL",
    ExitCode.BROKEN: "BROKEN",
}
