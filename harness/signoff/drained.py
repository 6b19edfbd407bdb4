"""The sign-off's drained pass (`harness signoff --drained`): the unit as it is after hours of load and a
failover, judged by the same thresholds as the fresh pass.

After the fresh scenarios, PostgreSQL, the proxy and the cache node are restarted with cpu_credits =
drained (the cache node at its CPU baseline, the volume at its baseline IOPS, PostgreSQL's data evicted
from the page cache), and vector search, the cache hit rate and pooling at the design concurrency run
again into a results file of their own, every load step capped at drained_step_cap_s. The caps the kernel
held during the pass are read back into the run facts; the report puts both passes side by side
(harness/report/drained.py) and the verdict is the worse of the two. Afterwards the unit is restarted as it
was configured, unless the sign-off is about to stop it anyway.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Reporter
from harness.endpoints import StackEndpoints
from harness.measure.results import ResultsWriter
from harness.measure.run_facts import run_facts
from harness.report.drained import DRAINED_RESULTS_FILE
from harness.services.cgroups import CgroupLimiter
from harness.services.process import ServiceError
from harness.signoff.progress import ENV_STEP_TIMES
from harness.signoff.scenarios import ScenarioRunner
from harness.thresholds import ExitCode

# What the drained pass runs: the steps the issue names, at the design concurrency (the size fixture trims
# pooling to it), nothing destructive and no drills.
DRAINED_SELECTION = (
    "test_latency_and_recall_by_concurrency or test_hit_rate_at_the_design_skew"
    " or (test_acquisition_and_throughput_by_client_count and proxy)"
)
DRAINED_JUNIT = "scenarios-drained-junit.xml"


def kernel_caps(stack: StackEndpoints) -> dict[str, Any]:
    """The caps in force, read from the kernel's cgroup files (what holds, not what was asked for)."""
    credits = stack.facts.get("credits") or {}
    caps: dict[str, Any] = {"enforced": bool(credits.get("enforced")), "detail": credits.get("detail")}
    if credits.get("redis_cgroup"):
        vcpus, period = CgroupLimiter(credits["redis_cgroup"]).cpu_limit()
        caps["cache_cpu_vcpus"], caps["cache_cpu_period_us"] = vcpus, period
    storage = credits.get("storage") or {}
    if credits.get("postgres_cgroup") and storage.get("device"):
        group = CgroupLimiter(credits["postgres_cgroup"])
        caps["db_cpu_vcpus"] = group.cpu_limit()[0]
        caps["disk"] = group.io_limits(storage["device"])
    caps["storage_detail"] = storage.get("detail")
    return caps


def run_drained_pass(
    backend: Backend,
    runner: ScenarioRunner,
    out_dir: Path,
    *,
    step_cap_s: float,
    credits_after: str | None,
    report: Reporter,
) -> dict[str, Any]:
    """Run the drained pass with the fresh pass's runner (its suite, size and thresholds), each step capped
    at `step_cap_s`; returns the facts the report needs (`exit_code` among them). Afterwards the unit is
    restarted with `credits_after` (the configured cpu_credits), or left drained when it is None."""
    began = time.monotonic()
    facts: dict[str, Any] = {"results_file": DRAINED_RESULTS_FILE, "step_cap_s": step_cap_s}
    try:
        drained = backend.restart_with_credits("drained", report)
    except (NotImplementedError, ServiceError, OSError) as exc:
        report(f"drained pass NOT RUN: {exc}")
        return {**facts, "ran": False, "detail": f"drained pass NOT RUN: {exc}", "exit_code": ExitCode.BROKEN}
    try:
        facts["caps_before"] = kernel_caps(drained)
        results_path = out_dir / DRAINED_RESULTS_FILE
        ResultsWriter.open(
            results_path,
            run={**run_facts(drained, Path.cwd()), "scenario_size": runner.size, "scenario_pass": "drained"},
        )
        report(f"drained pass: {DRAINED_SELECTION} ({runner.size} size, each step capped at {step_cap_s:g} s)")
        outcome = runner.run(
            results_path,
            out_dir,
            ["-k", DRAINED_SELECTION],
            extra_env={
                "HARNESS_CPU_CREDITS": "drained",
                "HARNESS_SCENARIO_PASS": "drained",
                "HARNESS_STEP_CAP_S": str(step_cap_s),
                # Its own step times: the fresh pass's estimates of time left must not learn drained ones.
                ENV_STEP_TIMES: str(runner.step_times.with_name(f"{runner.step_times.stem}-drained.json")),
            },
            junit_name=DRAINED_JUNIT,
        )
        # Read again at the end: a cap that did not hold through the pass would show here.
        facts["caps_after"] = kernel_caps(drained)
        facts.update(
            ran=True,
            credits=drained.facts.get("credits"),
            scenario_checks=outcome.as_facts(),
            scenario_exit_code=outcome.exit_code,
            exit_code=outcome.exit_code,
        )
    finally:
        facts["duration_s"] = round(time.monotonic() - began, 1)
        if credits_after is not None:
            try:
                backend.restart_with_credits(credits_after, report)
            except (ServiceError, OSError) as exc:
                report(f"could not restart the unit with cpu_credits = {credits_after}: {exc}")
    return facts
