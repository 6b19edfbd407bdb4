"""Confidence intervals of judged figures: wide from few samples, narrow from many, and they cover the
true percentile about as often as they claim."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.confidence import percentile_interval, percentile_rank_bounds, wilson_interval
from harness.measure.metrics import Statistic
from harness.measure.results import ResultsWriter, load_results
from harness.thresholds.evaluate import evaluate_threshold
from harness.thresholds.loading import parse_thresholds


def test_a_p95_from_400_samples_is_far_less_certain_than_one_from_40000():
    rng = np.random.default_rng(1)
    widths = []
    for n in (400, 40_000):
        values = np.sort(rng.lognormal(3, 0.5, n))
        low, high = percentile_interval(n, 95, lambda rank, v=values: float(v[rank - 1]))
        widths.append(high - low)
    assert widths[0] > 5 * widths[1]


def test_the_order_statistic_interval_covers_the_true_p95_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_p95 = float(np.exp(3 + 0.5 * 1.6448536269514722))
    covered = 0
    trials = 400
    for _ in range(trials):
        values = np.sort(rng.lognormal(3, 0.5, 500))
        low, high = percentile_interval(500, 95, lambda rank, v=values: float(v[rank - 1]))
        covered += low <= true_p95 <= high
    assert 0.92 <= covered / trials <= 0.99


def test_rank_bounds_stay_inside_the_sample():
    assert percentile_rank_bounds(3, 99) == (2, 3)
    assert percentile_rank_bounds(1, 50) == (1, 1)
    with pytest.raises(ValueError):
        percentile_rank_bounds(0, 95)


def test_the_wilson_interval_stays_within_0_and_1_at_the_edges():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    low, high = wilson_interval(700, 1000)
    assert low < 0.7 < high and high - low < 0.06


def _threshold(expr: str):
    text = (
        "schema_version: 1\nthresholds:\n"
        f"  - {{metric: vector_search.latency_ms, warning: '{expr}', unit: ms, source: test, ours: true}}\n"
    )
    return parse_thresholds(text, "test").thresholds[0]


@pytest.mark.parametrize(("n", "conclusive"), [(200, False), (50_000, True)])
def test_a_threshold_whose_interval_straddles_its_level_says_not_conclusive(tmp_path, n, conclusive):
    rng = np.random.default_rng(3)
    values = rng.normal(50, 10, n).clip(1)
    level = float(np.percentile(values, 95)) * 1.02
    writer = ResultsWriter.open(tmp_path / "results.json")
    writer.record_latency("vector_search.latency_ms", values.tolist())
    result = evaluate_threshold(_threshold(f"p95 < {level:.3f}ms"), load_results(tmp_path / "results.json"))
    assert result.sample_size == n
    assert result.interval is not None and result.interval[0] <= result.measured <= result.interval[1]
    assert result.conclusive is conclusive
    assert ("not conclusive" in result.message) is (not conclusive)


def test_a_percentile_figure_from_the_histogram_carries_its_interval(tmp_path):
    writer = ResultsWriter.open(tmp_path / "results.json")
    writer.record_latency("vector_search.latency_ms", [float(v) for v in range(1, 1001)])
    figure = load_results(tmp_path / "results.json").get("vector_search.latency_ms").statistic(Statistic("p", 95))
    assert figure.sample_size == 1000
    low, high = figure.interval
    # Ranks 950 -/+ 13.5: the 937th and 965th of 1..1000 ms, to the histogram's 3 figures.
    assert low == pytest.approx(936, abs=2) and high == pytest.approx(965, abs=2)
