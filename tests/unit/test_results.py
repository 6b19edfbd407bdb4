"""The results document: recording each kind, statistics, and exact merges across concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.measure.metrics import Statistic, UnknownMetricError
from harness.measure.results import (
    HDR_HIGHEST,
    HDR_LOWEST,
    MeasurementError,
    ResultsError,
    ResultsWriter,
    load_results,
    new_histogram,
)


def pct(n: float) -> Statistic:
    return Statistic("p", n)


def test_open_creates_a_versioned_document_and_merges_run_facts(tmp_path: Path) -> None:
    path = tmp_path / "run" / "results.json"
    results = ResultsWriter.open(path, run={"backend": "embedded", "versions": {"postgresql": "17"}})
    results.update_run({"versions": {"redis": "8"}, "machine": {"cores": 2}})
    document = json.loads(path.read_text())
    assert document["schema_version"] == 1
    assert document["run"]["versions"] == {"postgresql": "17", "redis": "8"}
    assert document["run"]["machine"] == {"cores": 2}
    assert "created_at" in document["run"]
    assert load_results(path).run["backend"] == "embedded"


def test_each_kind_records_and_computes_its_statistics(tmp_path: Path) -> None:
    results = ResultsWriter.open(tmp_path / "r.json")
    results.record_latency("vector_search.latency_ms", [10.0, 20.0, 30.0, 40.0])
    for t, value in ((3.0, 50.0), (1.0, 10.0), (2.0, 30.0)):
        results.record_value("rds.cpu_pct", value, t=t)
    results.record_rate("cache.hit_rate_pct", 30, 40, t=1.0)
    results.record_rate("cache.hit_rate_pct", 50, 60, t=2.0)
    results.record_count("cache.evictions", 2)
    results.record_count("cache.evictions", 3)
    results.record_series("vector_search.recall_curve", [{"ef_search": 40, "recall_at_10": 0.95, "p95_ms": 12.0}])
    run = results.read()

    latency = run.measurements["vector_search.latency_ms"]
    assert latency.statistic(Statistic("count")).value == 4
    assert latency.statistic(pct(50)).value == pytest.approx(20.0, rel=1e-3)
    assert latency.statistic(Statistic("max")).value == pytest.approx(40.0, rel=1e-3)
    assert latency.statistic(Statistic("min")).value == pytest.approx(10.0, rel=1e-3)
    assert latency.statistic(Statistic("mean")).value == pytest.approx(25.0, rel=1e-3)

    cpu = run.measurements["rds.cpu_pct"]
    assert cpu.statistic(Statistic("value")).value == 50.0  # the latest sample, whatever the record order
    assert cpu.statistic(Statistic("mean")).value == 30.0
    assert cpu.statistic(pct(50)).value == 30.0  # nearest rank
    assert cpu.statistic(Statistic("count")).sample_size == 3

    hit_rate = run.measurements["cache.hit_rate_pct"].statistic(Statistic("rate"))
    assert (hit_rate.value, hit_rate.sample_size) == (80.0, 100)  # 80 of 100 reads, in %

    evictions = run.measurements["cache.evictions"].statistic(Statistic("count"))
    assert (evictions.value, evictions.sample_size) == (5, 2)
    assert run.measurements["vector_search.recall_curve"].points()[0]["ef_search"] == 40


def test_labels_keep_entries_apart_and_statistics_cover_them_all(tmp_path: Path) -> None:
    results = ResultsWriter.open(tmp_path / "r.json")
    results.record_latency("proxy.acquire_ms", [1.0] * 10, labels={"worker": 1})
    results.record_latency("proxy.acquire_ms", [9.0] * 10, labels={"worker": "2"})
    results.record_latency("proxy.acquire_ms", [1.0] * 10, labels={"worker": "1"})
    data = results.read().measurements["proxy.acquire_ms"]
    assert data.label_sets() == [{"worker": "1"}, {"worker": "2"}]
    assert data.histogram({"worker": "1"}).get_total_count() == 20
    assert data.statistic(Statistic("count")).value == 30


def _writer(path: str, seed: int, batches: int) -> None:
    rng = np.random.default_rng(seed)
    results = ResultsWriter.open(path)
    for _ in range(batches):
        results.record_latency("vector_search.latency_ms", rng.lognormal(np.log(20), 0.5, 500).tolist())
        results.record_count("cache.evictions", 1)


def test_concurrent_writers_merge_exactly(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    ResultsWriter.open(path)
    seeds, batches = (1, 2, 3, 4), 5
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(path), seed, batches)) for seed in seeds]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0

    # The same values through one histogram: what a single process measuring everything would hold.
    union = new_histogram()
    everything = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for _ in range(batches):
            values = rng.lognormal(np.log(20), 0.5, 500)
            everything.extend(values)
            for value in values:
                union.record_value(round(value * 1000))

    data = load_results(path).measurements["vector_search.latency_ms"]
    merged = data.histogram()
    assert merged.get_total_count() == len(everything) == 4 * 5 * 500
    for percentile in (50, 90, 95, 99, 99.9, 100):
        assert merged.get_value_at_percentile(percentile) == union.get_value_at_percentile(percentile)
        exact = float(np.percentile(everything, percentile, method="inverted_cdf"))
        # Exact to the histogram's 3 significant figures.
        assert data.statistic(pct(percentile)).value == pytest.approx(exact, rel=2e-3)
    assert merged.get_min_value() == union.get_min_value()
    assert merged.get_max_value() == union.get_max_value()
    assert load_results(path).measurements["cache.evictions"].count() == (20, 20)


def test_a_prebuilt_histogram_is_added_whole(tmp_path: Path) -> None:
    histogram = new_histogram()
    for value in (1500, 2500, 3500):
        histogram.record_value(value)
    results = ResultsWriter.open(tmp_path / "r.json")
    results.record_latency("proxy.acquire_ms", histogram)
    results.record_latency("proxy.acquire_ms", [4.5])
    figure = results.read().measurements["proxy.acquire_ms"].statistic(Statistic("max"))
    assert figure.sample_size == 4
    assert figure.value == pytest.approx(4.5, rel=1e-3)

    foreign = HdrHistogram(HDR_LOWEST, HDR_HIGHEST // 10, 2)
    with pytest.raises(ResultsError, match=r"build it with harness\.measure\.results\.new_histogram\(\)"):
        results.record_latency("proxy.acquire_ms", foreign)


@pytest.mark.parametrize(
    ("record", "error", "fragment"),
    [
        (lambda r: r.record_latency("vector_search.latncy_ms", [1.0]), UnknownMetricError, "did you mean"),
        (lambda r: r.record_value("vector_search.latency_ms", 1.0), ResultsError, "record it with record_latency()"),
        (lambda r: r.record_latency("rds.cpu_pct", [1.0]), ResultsError, "record it with record_value()"),
        (lambda r: r.record_latency("proxy.acquire_ms", [-1.0]), ResultsError, "a timing bug"),
        (lambda r: r.record_latency("proxy.acquire_ms", [float("nan")]), ResultsError, "finite number"),
        (lambda r: r.record_rate("cache.hit_rate_pct", 5, 4), ResultsError, "0 <= hits <= total"),
        (lambda r: r.record_count("cache.evictions", -1), ResultsError, "non-negative integer"),
        (lambda r: r.record_series("vector_search.recall_curve", [{"ef_search": 40}]), ResultsError, "lacks p95_ms"),
    ],
)
def test_bad_records_are_refused(
    tmp_path: Path, record: Callable[[ResultsWriter], None], error: type[Exception], fragment: str
) -> None:
    results = ResultsWriter.open(tmp_path / "r.json")
    with pytest.raises(error) as caught:
        record(results)
    assert fragment in str(caught.value)
    assert results.read().measurements == {}


def test_statistics_that_cannot_be_computed(tmp_path: Path) -> None:
    results = ResultsWriter.open(tmp_path / "r.json")
    results.record_latency("proxy.acquire_ms", [])
    results.record_rate("cache.hit_rate_pct", 0, 0)
    run = results.read()
    assert run.measurements["proxy.acquire_ms"].statistic(Statistic("count")).value == 0
    with pytest.raises(MeasurementError, match="no samples"):
        run.measurements["proxy.acquire_ms"].statistic(pct(95))
    with pytest.raises(MeasurementError, match="rate is undefined"):
        run.measurements["cache.hit_rate_pct"].statistic(Statistic("rate"))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1}', "not a results document"),
        ('{"schema_version": 99, "run": {}, "measurements": {}}', "schema_version is 99; this harness reads 1"),
        (
            '{"schema_version": 1, "run": {}, "measurements": {"x": {"kind": "nope", "unit": "", "entries": []}}}',
            "measurement x is malformed",
        ),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(ResultsError) as caught:
        load_results(path)
    assert fragment in str(caught.value)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read results"):
        load_results(tmp_path / "absent.json")


def test_a_weighted_gauge_mean_counts_observations_not_samples(tmp_path):
    writer = ResultsWriter.open(tmp_path / "results.json")
    # Recall 0.9 over 1,000 queries and 0.5 over 10: the run's recall is 0.896, from 1,010 queries.
    writer.record_value("vector_search.recall_at_10", 0.9, {"clients": 1}, weight=1000)
    writer.record_value("vector_search.recall_at_10", 0.5, {"clients": 4}, weight=10)
    figure = writer.read().get("vector_search.recall_at_10").statistic(Statistic("mean"))
    assert figure.sample_size == 1010
    assert figure.value == pytest.approx((900 + 5) / 1010)
    with pytest.raises(ResultsError, match="weight must be a positive integer"):
        writer.record_value("vector_search.recall_at_10", 0.5, weight=0)
