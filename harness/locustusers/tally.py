"""What Locust processes measure for the harness, kept exactly and merged across processes.

Each process (a local runner or a worker) adds its requests to a `Tally`. A worker drains its tally into
every report it sends the master (Locust's `report_to_master` event, every 3 s and once more when it
quits); the master merges the drained parts into `RunTotals` (`worker_report` event), which writes the
results file at the end. A local runner drains into its own `RunTotals` on a timer.

Latencies are HDR histograms in the results file's layout, so the merged percentiles are those of all
requests of all workers, unlike Locust's own, which are rounded into buckets. The drained form is plain
lists, strings and numbers, which Locust's msgpack transport carries.

Besides measurements, a tally carries which metrics the run *attempted* to produce (`expect`): the gate
judges the thresholds of exactly those, so a request that failed before measuring anything leaves its
metric expected but missing, which is an error, never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.measure.metrics import MetricKind, metric_spec
from harness.measure.results import HDR_HIGHEST, ResultsWriter, decode_histogram, encode_histogram, new_histogram

Labels = Mapping[str, str | int | float]
# A metric and its labels as sorted pairs: hashable, and equal for equal label sets.
Key = tuple[str, tuple[tuple[str, str], ...]]

# Rate intervals shorter than this are merged: hit rate over time needs points, not one per report.
RATE_INTERVAL_S = 10.0


_SCALES: dict[str, int] = {}
_KEYS: dict[tuple[str, MetricKind, tuple[tuple[str, Any], ...]], Key] = {}


def _key(metric: str, kind: MetricKind, labels: Labels | None) -> Key:
    # Memoised: every request passes here, and a run has few distinct label sets.
    given = (metric, kind, tuple((labels or {}).items()))
    key = _KEYS.get(given)
    if key is None:
        spec = metric_spec(metric)
        if spec.kind != kind:
            raise ValueError(f"{metric} is a {spec.kind} metric, not a {kind}; see harness/measure/metrics.py")
        key = _KEYS[given] = (metric, tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items())))
    return key


@dataclass
class Tally:
    """One process's measurements since the last drain. Greenlets share it: nothing here yields."""

    histograms: dict[Key, HdrHistogram] = field(default_factory=dict)
    # [hits, trials]
    rates: dict[Key, list[int]] = field(default_factory=dict)
    counts: dict[Key, int] = field(default_factory=dict)
    # [sum of numerators, sum of denominators]: a mean that merges exactly (recall = hits / (k * queries)).
    ratios: dict[Key, list[float]] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)

    def expect(self, *metrics: str) -> None:
        """Declare that this run set out to measure `metrics`, before knowing whether it will."""
        for metric in metrics:
            if metric not in self.expected:
                metric_spec(metric)
                self.expected.add(metric)

    def latency(self, metric: str, ms: float, labels: Labels | None = None) -> None:
        key = _key(metric, MetricKind.HISTOGRAM, labels)
        histogram = self.histograms.get(key)
        if histogram is None:
            histogram = self.histograms[key] = new_histogram()
            _SCALES[metric] = metric_spec(metric).hdr_scale
        # Clamped: a value outside the layout would be dropped silently by the histogram.
        histogram.record_value(min(HDR_HIGHEST, max(1, round(ms * _SCALES[metric]))))

    def rate(self, metric: str, hits: int, trials: int = 1, labels: Labels | None = None) -> None:
        if not 0 <= hits <= trials:
            raise ValueError(f"{metric}: need 0 <= hits <= trials, got {hits} of {trials}")
        pair = self.rates.setdefault(_key(metric, MetricKind.RATE, labels), [0, 0])
        pair[0] += hits
        pair[1] += trials

    def count(self, metric: str, n: int = 1, labels: Labels | None = None) -> None:
        key = _key(metric, MetricKind.COUNTER, labels)
        self.counts[key] = self.counts.get(key, 0) + n

    def ratio(self, metric: str, numerator: float, denominator: float, labels: Labels | None = None) -> None:
        pair = self.ratios.setdefault(_key(metric, MetricKind.GAUGE, labels), [0.0, 0.0])
        pair[0] += numerator
        pair[1] += denominator

    def drain(self) -> dict[str, Any]:
        """Everything since the last drain, in the wire form `RunTotals.merge` takes; the tally restarts empty."""
        payload = {
            "expected": sorted(self.expected),
            "histograms": [[m, dict(labels), encode_histogram(h)] for (m, labels), h in self.histograms.items()],
            "rates": [[m, dict(labels), hits, trials] for (m, labels), (hits, trials) in self.rates.items()],
            "counts": [[m, dict(labels), n] for (m, labels), n in self.counts.items()],
            "ratios": [[m, dict(labels), num, den] for (m, labels), (num, den) in self.ratios.items()],
        }
        self.histograms, self.rates, self.counts, self.ratios = {}, {}, {}, {}
        # Expectations are not cleared: a worker that reports again must not take its declaration back.
        return payload


@dataclass
class RunTotals:
    """The whole run's measurements, merged from drained tallies; written once, at the end."""

    histograms: dict[Key, HdrHistogram] = field(default_factory=dict)
    # Per key, [t, hits, trials] intervals, oldest first.
    intervals: dict[Key, list[list[float]]] = field(default_factory=dict)
    counts: dict[Key, int] = field(default_factory=dict)
    ratios: dict[Key, list[float]] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)

    def merge(self, payload: Mapping[str, Any], t: float | None = None) -> None:
        now = time.time() if t is None else t
        self.expected.update(payload["expected"])
        for metric, labels, encoded in payload["histograms"]:
            key = _key(metric, MetricKind.HISTOGRAM, labels)
            part = decode_histogram(encoded, "a Locust worker's report")
            if key in self.histograms:
                self.histograms[key].add(part)
            else:
                self.histograms[key] = part
        for metric, labels, hits, trials in payload["rates"]:
            series = self.intervals.setdefault(_key(metric, MetricKind.RATE, labels), [])
            if series and now - series[-1][0] < RATE_INTERVAL_S:
                series[-1][1] += hits
                series[-1][2] += trials
            else:
                series.append([now, hits, trials])
        for metric, labels, n in payload["counts"]:
            key = _key(metric, MetricKind.COUNTER, labels)
            self.counts[key] = self.counts.get(key, 0) + n
        for metric, labels, num, den in payload["ratios"]:
            pair = self.ratios.setdefault(_key(metric, MetricKind.GAUGE, labels), [0.0, 0.0])
            pair[0] += num
            pair[1] += den

    def total_count(self, metric: str) -> int:
        """Samples of a histogram metric over all its label sets."""
        return sum(h.get_total_count() for (m, _), h in self.histograms.items() if m == metric)

    def write(self, results: ResultsWriter) -> None:
        for (metric, labels), histogram in self.histograms.items():
            results.record_latency(metric, histogram, dict(labels))
        for (metric, labels), series in self.intervals.items():
            for t, hits, trials in series:
                results.record_rate(metric, int(hits), int(trials), dict(labels), t=t)
        for (metric, labels), n in self.counts.items():
            results.record_count(metric, n, dict(labels))
        for (metric, labels), (num, den) in self.ratios.items():
            if den > 0:
                results.record_value(metric, num / den, dict(labels), weight=max(1, round(den)))
