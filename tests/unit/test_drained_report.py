"""The report of `harness signoff --drained`: fresh and drained figures side by side, judged by the same
thresholds, and a verdict that counts both."""

import json

import pytest

from harness.measure.results import ResultsWriter, load_results
from harness.report import render_report
from harness.report.drained import DRAINED_RESULTS_FILE, DRAINED_TITLE, drained_comparison, drained_summary
from harness.thresholds import ExitCode, ThresholdSet, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

JUDGED = ("vector_search.latency_ms", "vector_search.recall_at_10", "cache.hit_rate_pct")
CAPS = {
    "enforced": True,
    "cache_cpu_vcpus": 0.2,
    "cache_cpu_period_us": 10_000,
    "disk": {"read_iops": 100, "write_iops": 100, "read_bps": 8_000_000},
}


@pytest.fixture(scope="module")
def thresholds() -> ThresholdSet:
    full = load_thresholds(DEFAULT_THRESHOLDS_FILE)
    return ThresholdSet(tuple(t for t in full.thresholds if t.id in JUDGED), full.sources)


def write_pass(path, latency_ms: float, recall: float, hits: int, run=None) -> ResultsWriter:
    writer = ResultsWriter.open(path, run=run or {})
    writer.record_latency("vector_search.latency_ms", [latency_ms] * 500, {"clients": 1})
    writer.record_value("vector_search.recall_at_10", recall, {"clients": 1}, weight=200)
    writer.record_rate("cache.hit_rate_pct", hits, 1000, {"skew": 1.0})
    return writer


def ran(**extra):
    return {"ran": True, "results_file": DRAINED_RESULTS_FILE, "caps_after": CAPS, "step_cap_s": 60.0, **extra}


def test_the_report_puts_fresh_and_drained_side_by_side_and_the_worse_verdict_wins(tmp_path, thresholds):
    fresh = write_pass(tmp_path / "results.json", latency_ms=12.0, recall=0.96, hits=800)
    drained = write_pass(tmp_path / DRAINED_RESULTS_FILE, latency_ms=5200.0, recall=0.96, hits=790)
    drained.record_capped_step("search x1", 60.0, 11, 4000)
    fresh.update_run({"drained_pass": ran(scenario_exit_code=ExitCode.PASS)})
    outcome = render_report(tmp_path / "results.json", tmp_path / "out", thresholds)
    # Fresh alone passes; drained vector search breaches its critical level: the sign-off fails.
    assert {r.status.value for r in outcome.evaluation} == {"PASS"}
    assert outcome.exit_code == ExitCode.FAIL
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {row["id"]: row for row in document["drained_pass"]["rows"]}
    assert set(rows) == set(JUDGED)
    latency = rows["vector_search.latency_ms"]
    assert (latency["fresh_status"], latency["drained_status"]) == ("PASS", "FAIL")
    assert latency["fresh"] < 13 and latency["drained"] > 5000
    assert rows["cache.hit_rate_pct"]["fresh"] == pytest.approx(80.0)
    assert rows["cache.hit_rate_pct"]["drained"] == pytest.approx(79.0)
    assert document["drained_pass"]["caps"]["cache_cpu_vcpus"] == 0.2
    assert document["verdict"] == "FAIL"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"## {DRAINED_TITLE}" in markdown
    assert "| fresh | fresh status | drained | drained status |" in markdown
    assert "CAPPED steps" in markdown and "search x1 (capped at 60 s: 11 of 4000 requests)" in markdown
    assert "cache node 0.2 vCPU (CFS period 10000 µs)" in markdown
    html = (tmp_path / "out" / "report.html").read_text()
    assert DRAINED_TITLE in html
    assert 'alt="Fresh and drained against the critical levels"' in html
    # Re-rendered elsewhere, the directory carries the drained results too.
    assert (tmp_path / "out" / DRAINED_RESULTS_FILE).exists()
    assert "CAPPED search x1" in drained_summary(document["drained_pass"])


@pytest.mark.parametrize(
    ("case", "facts", "write_drained", "scenario_code", "code", "detail"),
    [
        ("both pass", ran(), True, ExitCode.PASS, ExitCode.PASS, ""),
        ("a failed drained scenario check fails it", ran(), True, ExitCode.FAIL, ExitCode.FAIL, ""),
        (
            "a pass that could not run is broken",
            {"ran": False, "detail": "drained pass NOT RUN: x"},
            False,
            0,
            5,
            "NOT RUN",
        ),
        ("missing results are broken", ran(), False, ExitCode.PASS, ExitCode.BROKEN, "missing"),
    ],
)
def test_the_drained_verdict(tmp_path, thresholds, case, facts, write_drained, scenario_code, code, detail):
    write_pass(tmp_path / "results.json", latency_ms=12.0, recall=0.96, hits=800)
    if write_drained:
        write_pass(tmp_path / DRAINED_RESULTS_FILE, latency_ms=20.0, recall=0.96, hits=800)
    comparison = drained_comparison(
        thresholds, load_results(tmp_path / "results.json"), {**facts, "scenario_exit_code": scenario_code}, tmp_path
    )
    assert comparison.exit_code == code, case
    assert detail in comparison.detail, case


def test_a_drained_pass_that_measured_nothing_judged_is_broken(tmp_path, thresholds):
    write_pass(tmp_path / "results.json", latency_ms=12.0, recall=0.96, hits=800)
    ResultsWriter.open(tmp_path / DRAINED_RESULTS_FILE, run={})
    comparison = drained_comparison(thresholds, load_results(tmp_path / "results.json"), ran(), tmp_path)
    assert comparison.exit_code == ExitCode.BROKEN and "no judged metric" in comparison.detail
