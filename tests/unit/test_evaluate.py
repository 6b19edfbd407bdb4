"""Evaluation: statuses, levels and margins, missing measurements, and the exit code of each outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.measure.results import ResultsError, ResultsWriter, load_results
from harness.thresholds import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    Status,
    ThresholdSet,
    evaluate,
    exit_code,
    not_emulated_note,
    parse_thresholds,
    verdict,
)

if TYPE_CHECKING:
    from conftest import ThresholdText


@pytest.fixture
def thresholds(threshold_text: ThresholdText) -> ThresholdSet:
    t = threshold_text
    return parse_thresholds(t.file(t.cpu, t.cache_hit_rate, t.evictions, t.proxy_acquire), "t.yaml")


def run_with(tmp_path: Path, cpu: float, hits: int, evictions: int, acquire_ms: float) -> Path:
    path = tmp_path / "results.json"
    path.unlink(missing_ok=True)
    results = ResultsWriter.open(path)
    results.record_value("rds.cpu_pct", cpu, t=1.0)
    results.record_rate("cache.hit_rate_pct", hits, 100, t=1.0)
    results.record_count("cache.evictions", evictions)
    results.record_latency("proxy.acquire_ms", [acquire_ms] * 20)
    return path


def test_status_level_margin_and_sample_size(tmp_path: Path, thresholds: ThresholdSet) -> None:
    outcome = {r.threshold.id: r for r in evaluate(thresholds, load_results(run_with(tmp_path, 60, 60, 3, 150)))}
    cpu, hit_rate, evictions, acquire = (
        outcome["rds.cpu_pct"],
        outcome["cache.hit_rate_pct"],
        outcome["cache.evictions"],
        outcome["proxy.acquire_ms"],
    )
    # PASS: the level is the first one to fire, the margin is the headroom before it.
    assert (cpu.status, cpu.level_name, cpu.level, cpu.margin, cpu.sample_size) == (Status.PASS, "warning", 70, 10, 1)
    # WARN on a lower bound: 60 % is 10 points short of the 70 % warning level.
    assert (hit_rate.status, hit_rate.level, hit_rate.margin, hit_rate.sample_size) == (Status.WARN, 70, -10, 100)
    assert (evictions.status, evictions.measured, evictions.margin) == (Status.WARN, 3, -3)
    # FAIL: the breached critical level, and how far past it the run went.
    assert (acquire.status, acquire.level_name, acquire.level, acquire.sample_size) == (
        Status.FAIL,
        "critical",
        100,
        20,
    )
    assert acquire.margin == pytest.approx(-50, rel=1e-3)
    assert acquire.margin_pct == pytest.approx(-50, rel=1e-3)
    assert "breaches critical `p95 < 0.1s`" in acquire.message


def test_a_met_equality_has_zero_margin_not_minus_zero(tmp_path: Path, thresholds: ThresholdSet) -> None:
    (evictions,) = [
        r
        for r in evaluate(thresholds, load_results(run_with(tmp_path, 10, 90, 0, 5)))
        if r.threshold.id == "cache.evictions"
    ]
    assert evictions.status is Status.PASS
    assert str(evictions.margin) == "0.0"


def test_a_metric_never_measured_is_an_error_never_a_pass(tmp_path: Path, thresholds: ThresholdSet) -> None:
    path = tmp_path / "results.json"
    ResultsWriter.open(path).record_value("rds.cpu_pct", 10.0)
    outcome = {r.threshold.id: r for r in evaluate(thresholds, load_results(path))}
    missing = outcome["cache.hit_rate_pct"]
    assert missing.status is Status.ERROR
    assert missing.measured is None and missing.margin is None
    assert "cache.hit_rate_pct was never measured" in missing.message
    assert "run the scenario that records it" in missing.message
    assert outcome["rds.cpu_pct"].status is Status.PASS
    assert exit_code(list(outcome.values())) == ExitCode.BROKEN


def test_recorded_but_empty_is_an_error(tmp_path: Path, thresholds: ThresholdSet) -> None:
    path = tmp_path / "empty.json"
    results = ResultsWriter.open(path)
    results.record_latency("proxy.acquire_ms", [])
    results.record_rate("cache.hit_rate_pct", 0, 0)
    outcome = {r.threshold.id: r for r in evaluate(thresholds, load_results(path))}
    assert outcome["proxy.acquire_ms"].status is Status.ERROR
    assert "recorded with no samples" in outcome["proxy.acquire_ms"].message
    assert outcome["cache.hit_rate_pct"].status is Status.ERROR
    assert "no trials" in outcome["cache.hit_rate_pct"].message


def test_a_results_file_from_an_older_registry_is_an_error(tmp_path: Path, thresholds: ThresholdSet) -> None:
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "run": {},
                "measurements": {
                    "rds.cpu_pct": {
                        "kind": "counter",
                        "unit": "",
                        "entries": [{"labels": {}, "count": 1, "records": 1}],
                    }
                },
            }
        )
    )
    (cpu,) = [r for r in evaluate(thresholds, load_results(path)) if r.threshold.id == "rds.cpu_pct"]
    assert cpu.status is Status.ERROR
    assert "predates a registry change" in cpu.message


@pytest.mark.parametrize(
    ("cpu", "hits", "evictions", "acquire_ms", "expected"),
    [
        (10, 90, 0, 5, ExitCode.PASS),
        (75, 90, 0, 5, ExitCode.WARN),
        (75, 40, 0, 5, ExitCode.FAIL),
    ],
)
def test_exit_code_of_each_outcome(
    tmp_path: Path, cpu: float, hits: int, evictions: int, acquire_ms: float, expected: int, thresholds: ThresholdSet
) -> None:
    assert (
        exit_code(evaluate(thresholds, load_results(run_with(tmp_path, cpu, hits, evictions, acquire_ms)))) == expected
    )


def test_a_broken_run_outranks_a_critical_breach(tmp_path: Path, thresholds: ThresholdSet) -> None:
    path = tmp_path / "results.json"
    ResultsWriter.open(path).record_value("rds.cpu_pct", 99.0)
    outcome = evaluate(thresholds, load_results(path))
    assert {r.status for r in outcome} == {Status.FAIL, Status.ERROR}
    assert exit_code(outcome) == ExitCode.BROKEN


def test_exit_codes_are_distinct_and_clear_of_python_and_argparse() -> None:
    codes = [ExitCode.PASS, ExitCode.WARN, ExitCode.FAIL, ExitCode.BROKEN]
    assert len(set(codes)) == 4
    assert codes == sorted(codes)  # severity rises with the code
    assert not {1, 2} & set(codes)  # uncaught exceptions exit 1, argparse usage errors 2
    assert set(EXIT_CODE_MEANINGS) == set(codes)


NO_SERVER_SIDE = "the cache node is a container: no server-side hit counters on this backend"


def test_a_metric_declared_not_emulated_is_not_emulated_with_its_reason_not_an_error(
    tmp_path: Path, thresholds: ThresholdSet
) -> None:
    path = tmp_path / "results.json"
    results = ResultsWriter.open(path)
    results.record_value("rds.cpu_pct", 10.0)
    results.record_rate("cache.hit_rate_pct", 90, 100)
    results.record_count("cache.evictions", 0)
    results.record_not_emulated("proxy.acquire_ms", NO_SERVER_SIDE)
    outcome = evaluate(thresholds, load_results(path))
    (acquire,) = [r for r in outcome if r.threshold.id == "proxy.acquire_ms"]
    assert (acquire.status, acquire.message, acquire.measured) == (Status.NOT_EMULATED, NO_SERVER_SIDE, None)
    # It neither breaks the run nor passes: the verdict is the judged thresholds', and says what was left out.
    assert exit_code(outcome) == ExitCode.PASS
    assert verdict(outcome) is Status.PASS
    assert not_emulated_note(outcome) == "1 of 4 thresholds NOT EMULATED on this backend (neither judged nor passed)"


def test_a_metric_declared_not_emulated_but_measured_is_judged_on_its_measurement(
    tmp_path: Path, thresholds: ThresholdSet
) -> None:
    path = run_with(tmp_path, 60, 60, 3, 150)
    ResultsWriter.open(path).record_not_emulated("proxy.acquire_ms", NO_SERVER_SIDE)
    (acquire,) = [r for r in evaluate(thresholds, load_results(path)) if r.threshold.id == "proxy.acquire_ms"]
    assert acquire.status is Status.FAIL and acquire.measured == pytest.approx(150, rel=1e-3)


def test_not_emulated_does_not_hide_another_metric_never_measured(tmp_path: Path, thresholds: ThresholdSet) -> None:
    path = tmp_path / "results.json"
    ResultsWriter.open(path).record_not_emulated("proxy.acquire_ms", NO_SERVER_SIDE)
    outcome = evaluate(thresholds, load_results(path))
    assert {r.status for r in outcome} == {Status.NOT_EMULATED, Status.ERROR}
    assert exit_code(outcome) == ExitCode.BROKEN


def test_a_not_emulated_statement_needs_a_known_metric_and_a_reason(tmp_path: Path) -> None:
    results = ResultsWriter.open(tmp_path / "results.json")
    with pytest.raises(ResultsError, match="say why"):
        results.record_not_emulated("proxy.acquire_ms", "  ")
    with pytest.raises(ValueError):
        results.record_not_emulated("proxy.acquire_msec", NO_SERVER_SIDE)
