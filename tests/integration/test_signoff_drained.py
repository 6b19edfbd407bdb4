"""`harness signoff --drained` at the ci size, on a throw-away stack: the drained pass runs after the fresh
one, the kernel held the drained caps during it, and the report carries both passes side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT
from harness.report.drained import DRAINED_RESULTS_FILE, DRAINED_TITLE
from harness.services.cgroups import BURSTABLE_CPU_PERIOD_US

pytestmark = pytest.mark.integration


def test_a_drained_signoff_reports_fresh_and_drained_side_by_side(isolated_stack, tmp_path):
    reports = tmp_path / "reports"
    # The fresh pass runs one scenario (the rest of the suite is not this test's subject); the drained pass
    # runs its own selection: vector search, the cache hit rate, pooling at the design concurrency.
    # A short cap keeps the test short and lets a slow drained step show up as CAPPED.
    env = {**isolated_stack.env, "HARNESS_DRAINED_STEP_CAP_S": "10"}
    run = isolated_stack.harness(
        "signoff",
        "--size",
        "ci",
        "--drained",
        "--scenarios",
        str(REPO_ROOT / "scenarios"),
        "--reports",
        str(reports),
        "--",
        "-k",
        "test_hit_rate_at_the_design_skew",
        env=env,
        timeout=1200,
    )
    assert run.returncode in (0, 3, 4, 5), run.stdout[-3000:] + run.stderr[-3000:]
    (out,) = list(reports.iterdir())
    document = json.loads((out / "report.json").read_text())
    drained = document["drained_pass"]
    facts = document["run"]["drained_pass"]
    assert facts["ran"], facts
    assert (out / DRAINED_RESULTS_FILE).exists()
    rows = {row["id"]: row for row in drained["rows"]}
    # Both columns: the cache hit rate was measured in both passes; vector search only drained (the fresh
    # pass did not run it), which the row says rather than hides.
    cache = rows["cache.hit_rate_pct"]
    assert cache["fresh"] is not None and cache["drained"] is not None
    assert cache["fresh_status"] in ("PASS", "WARN", "FAIL") and cache["drained_status"] in ("PASS", "WARN", "FAIL")
    latency = rows["vector_search.latency_ms"]
    assert latency["drained"] is not None and latency["fresh"] is None and latency["fresh_status"] == "ERROR"
    # The verdict counts both passes.
    assert document["exit_code"] >= drained["exit_code"]
    markdown = (out / "report.md").read_text()
    assert f"## {DRAINED_TITLE}" in markdown and "drained status" in markdown
    assert "drained pass:" in run.stdout
    # Each step of the pass obeyed the cap; any it ended is named with the cap, in the report and on the terminal.
    assert facts["step_cap_s"] == 10.0
    for step, info in drained["capped_steps"].items():
        assert info["cap_s"] == 10.0 and info["requests"] < info["max_requests"]
        assert f"{step} (capped at 10 s" in markdown and f"CAPPED {step}" in run.stdout
    caps = facts["caps_before"]
    if not caps["enforced"]:
        assert "credits NOT enforced" in caps["detail"]
        pytest.skip(f"no writable cgroups here: {caps['detail']}")
    # The kernel held the drained quota before and after the pass: the cache node at its 0.2 vCPU baseline.
    for held in (facts["caps_before"], facts["caps_after"]):
        assert held["cache_cpu_vcpus"] == pytest.approx(0.2)
        assert held["cache_cpu_period_us"] == BURSTABLE_CPU_PERIOD_US
        if held.get("disk"):
            assert held["disk"]["read_iops"] == 100
    assert facts["credits"]["mode"] == "drained"
    drained_results = json.loads(Path(out / DRAINED_RESULTS_FILE).read_text())
    assert drained_results["run"]["scenario_pass"] == "drained"
