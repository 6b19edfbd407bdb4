"""The Locust gate: thresholds from several files, judged only where the run set out to measure."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.locustusers.gate import DEFAULT_THRESHOLD_FILES, judge, judged_thresholds, load_gate_thresholds
from harness.measure.results import ResultsWriter
from harness.thresholds import ExitCode, Status, ThresholdConfigError


def test_the_default_files_combine_the_signoff_thresholds_with_the_locust_ones() -> None:
    thresholds = load_gate_thresholds(DEFAULT_THRESHOLD_FILES)
    ids = {t.id for t in thresholds.thresholds}
    assert {"vector_search.latency_ms", "cache.hit_rate_pct", "locust.failure_rate_pct"} <= ids
    assert len(thresholds.sources) == 2


def test_overrides_and_sets_apply_across_files() -> None:
    thresholds = load_gate_thresholds(
        DEFAULT_THRESHOLD_FILES,
        sets=["locust.failure_rate_pct:warning=rate < 0.5%", "vector_search.latency_ms:critical=none"],
    )
    by_id = thresholds.by_id()
    assert by_id["locust.failure_rate_pct"].level("warning") == pytest.approx(0.5)
    assert by_id["vector_search.latency_ms"].critical is None


def test_a_threshold_defined_in_two_files_is_refused() -> None:
    with pytest.raises(ThresholdConfigError, match="also defined"):
        load_gate_thresholds([DEFAULT_THRESHOLD_FILES[1], DEFAULT_THRESHOLD_FILES[1]])


def test_an_unknown_set_id_is_refused_before_anything_runs() -> None:
    with pytest.raises(ThresholdConfigError, match="no threshold with id"):
        load_gate_thresholds(DEFAULT_THRESHOLD_FILES, sets=["vector_search.latnecy_ms=p95 < 1ms"])


def results_with(tmp_path: Path, latency_ms: float, failures: int) -> ResultsWriter:
    results = ResultsWriter.open(tmp_path / "results.json")
    results.record_latency("vector_search.latency_ms", [latency_ms] * 50)
    results.record_rate("locust.failure_rate_pct", failures, 1000)
    return results


@pytest.mark.parametrize(
    ("latency_ms", "failures", "code"),
    [(10, 0, ExitCode.PASS), (60, 0, ExitCode.WARN), (10, 20, ExitCode.FAIL), (150, 0, ExitCode.FAIL)],
)
def test_the_exit_code_is_the_verdict_of_the_judged_thresholds(
    tmp_path: Path, latency_ms: float, failures: int, code: int
) -> None:
    thresholds = load_gate_thresholds(DEFAULT_THRESHOLD_FILES)
    expected = {"vector_search.latency_ms", "locust.failure_rate_pct"}
    outcome = judge(thresholds, results_with(tmp_path, latency_ms, failures).read(), expected)
    assert [r.threshold.id for r in outcome.evaluation] == ["vector_search.latency_ms", "locust.failure_rate_pct"]
    assert outcome.exit_code == code
    assert len(outcome.skipped) == len(thresholds.thresholds) - 2


def test_a_metric_the_run_set_out_to_measure_but_never_did_is_broken(tmp_path: Path) -> None:
    thresholds = load_gate_thresholds(DEFAULT_THRESHOLD_FILES)
    expected = {"vector_search.latency_ms", "vector_search.recall_at_10", "locust.failure_rate_pct"}
    outcome = judge(thresholds, results_with(tmp_path, 10, 0).read(), expected)
    statuses = {r.threshold.id: r.status for r in outcome.evaluation}
    assert statuses["vector_search.recall_at_10"] is Status.ERROR
    assert outcome.exit_code == ExitCode.BROKEN


def test_a_run_that_attempted_nothing_judged_is_broken_not_a_pass(tmp_path: Path) -> None:
    outcome = judge(load_gate_thresholds(DEFAULT_THRESHOLD_FILES), results_with(tmp_path, 10, 0).read(), set())
    assert outcome.evaluation == []
    assert outcome.exit_code == ExitCode.BROKEN
    assert "no request that any threshold judges" in outcome.text()


def test_exceptions_in_user_code_break_an_otherwise_passing_run(tmp_path: Path) -> None:
    expected = {"vector_search.latency_ms", "locust.failure_rate_pct"}
    outcome = judge(load_gate_thresholds(DEFAULT_THRESHOLD_FILES), results_with(tmp_path, 10, 0).read(), expected, 3)
    assert outcome.exit_code == ExitCode.BROKEN
    assert "raised 3 unhandled exception" in outcome.text()


def test_judged_thresholds_keeps_the_sources() -> None:
    thresholds = load_gate_thresholds(DEFAULT_THRESHOLD_FILES)
    assert judged_thresholds(thresholds, {"cache.hit_rate_pct"}).sources == thresholds.sources
