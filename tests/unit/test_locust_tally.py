"""Locust measurements: exact merges of drained tallies across processes, and what reaches the results file."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from harness.locustusers.tally import RATE_INTERVAL_S, RunTotals, Tally
from harness.measure.metrics import Statistic
from harness.measure.results import ResultsWriter, new_histogram


def test_latencies_from_many_workers_merge_to_the_exact_percentiles_of_all_requests() -> None:
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(1.5, 0.8, 30_000)
    totals = RunTotals()
    for worker in np.array_split(latencies, 3):
        tally = Tally()
        for chunk in np.array_split(worker, 4):  # a worker reports several times during a run
            for ms in chunk:
                tally.latency("locust.request_ms", float(ms), {"request_type": "postgres", "name": "q"})
            totals.merge(msgpack.unpackb(msgpack.packb(tally.drain())))  # the transport Locust uses
    alone = new_histogram()
    for ms in latencies:
        alone.record_value(round(ms * 1000))
    merged = totals.histograms[("locust.request_ms", (("name", "q"), ("request_type", "postgres")))]
    assert totals.total_count("locust.request_ms") == len(latencies)
    for percentile in (50, 95, 99, 99.9):
        assert merged.get_value_at_percentile(percentile) == alone.get_value_at_percentile(percentile)


def test_drain_empties_the_tally_but_keeps_what_it_set_out_to_measure() -> None:
    tally = Tally()
    tally.expect("vector_search.latency_ms")
    tally.latency("vector_search.latency_ms", 3.0)
    first = tally.drain()
    second = tally.drain()
    assert len(first["histograms"]) == 1
    assert second["histograms"] == []
    assert second["expected"] == ["vector_search.latency_ms"]


def test_recording_checks_the_metric_against_the_registry() -> None:
    tally = Tally()
    with pytest.raises(ValueError, match="unknown metric"):
        tally.expect("vector_search.latnecy_ms")
    with pytest.raises(ValueError, match="is a histogram metric"):
        tally.rate("locust.request_ms", 1)
    with pytest.raises(ValueError, match="hits <= trials"):
        tally.rate("cache.hit_rate_pct", 2, 1)


def test_rate_intervals_are_coalesced_over_reports_close_in_time() -> None:
    totals = RunTotals()
    for t in (0.0, 3.0, 6.0, 12.0):
        tally = Tally()
        tally.rate("cache.hit_rate_pct", 3, 4)
        totals.merge(tally.drain(), t=t)
    (series,) = totals.intervals.values()
    assert RATE_INTERVAL_S == 10.0
    assert series == [[0.0, 9, 12], [12.0, 3, 4]]


def test_the_run_totals_write_each_kind_so_statistics_read_back(tmp_path: Path) -> None:
    totals = RunTotals()
    for worker in range(2):
        tally = Tally()
        for ms in (1.0, 2.0, 3.0, 4.0):
            tally.latency("vector_search.latency_ms", ms + worker, {"source": "locust"})
        tally.rate("locust.failure_rate_pct", 1, 10, {"request_type": "postgres"})
        tally.count("lambda.data_export.throttles", worker)
        tally.ratio("vector_search.recall_at_10", 0.9 + worker / 10, 1)
        totals.merge(tally.drain(), t=100.0 + worker)
    results = ResultsWriter.open(tmp_path / "results.json")
    totals.write(results)
    run = results.read()
    latency = run.get("vector_search.latency_ms")
    assert latency.statistic(Statistic("count")).value == 8
    assert latency.statistic(Statistic("max")).value == pytest.approx(5.0, rel=1e-3)
    assert run.get("locust.failure_rate_pct").statistic(Statistic("rate")).value == pytest.approx(10.0)
    assert run.get("lambda.data_export.throttles").statistic(Statistic("count")).value == 1
    recall = run.get("vector_search.recall_at_10").statistic(Statistic("mean"))
    assert recall.value == pytest.approx(0.95)
    # Two queries (one per worker) behind the merged recall: N counts queries, not the one recorded sample.
    assert recall.sample_size == 2
