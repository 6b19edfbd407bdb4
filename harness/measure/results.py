"""The per-run results document: one JSON file that every scenario and Locust process appends to.

    {"schema_version": 1,
     "run": {...environment facts: backend, versions, sizing, cgroups, machine, data_profile, git...},
     "measurements": {
        "<metric>": {"kind": "histogram", "unit": "ms",
                     "entries": [{"labels": {...}, "scale": 1000, "histogram": "<HDR, base64>"}]},
        "<gauge>":   {..., "entries": [{"labels": {}, "samples": [[t, value], [t, value, weight], ...]}]},
        "<rate>":    {..., "entries": [{"labels": {}, "intervals": [[t, hits, total], ...]}]},
        "<counter>": {..., "entries": [{"labels": {}, "count": n, "records": k}]},
        "<series>":  {..., "entries": [{"labels": {}, "points": [{"t": ..., "field": ...}, ...]}]}},
     "not_emulated": {"<metric>": "<why this backend cannot measure it>"}}

`not_emulated` is a scenario's statement that it could not measure a metric on this backend, and why: the
evaluator reports such a threshold NOT EMULATED instead of ERROR (never measured). A metric that was measured
anyway is judged on its measurement.

Latencies are kept as HDR histograms rather than percentiles: histograms add, percentiles do not, so the
merged p99 of four Locust workers is exactly the p99 of all their requests (to the histogram's 3
significant figures). Timestamps are Unix seconds.

Concurrency: every append takes an exclusive `fcntl.flock` on `<file>.lock`, re-reads the document,
merges, and replaces the file atomically (write a temporary file, `os.replace`). Writers on one machine
never lose each other's data, and readers, who take no lock, always see a whole document. Appends cost a
file rewrite, so hot paths should accumulate in memory (`new_histogram()`) and record a batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import numbers
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.inputfiles import brief
from harness.measure.confidence import percentile_interval, wilson_interval
from harness.measure.metrics import (
    DIMENSIONLESS,
    MetricKind,
    MetricSpec,
    Statistic,
    convert,
    metric_spec,
    unit_family,
)

SCHEMA_VERSION = 1
# One hour in microseconds covers Lambda's 15-minute timeout with room to spare.
HDR_LOWEST = 1
HDR_HIGHEST = 3_600_000_000
HDR_SIGNIFICANT_FIGURES = 3

Labels = Mapping[str, str | int | float]


class ResultsError(ValueError):
    """A results file or a record that cannot be used; the message says what to change."""


class MeasurementError(ValueError):
    """A statistic that cannot be computed from what was recorded (no samples, say)."""


def new_histogram() -> HdrHistogram:
    """An empty histogram with the layout every results file uses; record integers of value*hdr_scale
    (microseconds for a metric in ms): `h.record_value(round(ms * 1000))`."""
    return HdrHistogram(HDR_LOWEST, HDR_HIGHEST, HDR_SIGNIFICANT_FIGURES)


def encode_histogram(histogram: HdrHistogram) -> str:
    """The histogram as the text a results file (and a Locust worker's report) carries."""
    return str(histogram.encode().decode("ascii"))


def decode_histogram(encoded: str, where: str) -> HdrHistogram:
    try:
        return HdrHistogram.decode(encoded.encode("ascii"))
    except Exception as exc:  # the codec raises zlib, struct and its own errors alike
        raise ResultsError(f"{where}: histogram does not decode ({exc}); the file is damaged, re-run") from None


def _labels(labels: Labels | None) -> dict[str, str]:
    # Strings throughout so that ef_search=40 and ef_search="40" are one label set.
    return {str(k): str(v) for k, v in sorted((labels or {}).items())}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _deep_merge(target: dict[str, Any], facts: Mapping[str, Any]) -> None:
    for key, value in facts.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value, default=str))


def _check_number(metric: str, what: str, value: float) -> float:
    # numbers.Real, not float: numpy scalars (float32 latencies, int64 counts) are welcome.
    checked: object = value
    if isinstance(checked, bool) or not isinstance(checked, numbers.Real) or not math.isfinite(checked):
        raise ResultsError(f"{metric}: {what} must be a finite number, got {value!r}")
    return float(checked)


def _is_count(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) >= 0


class ResultsWriter:
    """Appends measurements to one run's results file; see the module docstring for the format."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @classmethod
    def open(cls, path: Path | str, run: Mapping[str, Any] | None = None) -> ResultsWriter:
        """Open a results file, creating it if absent; `run` facts are merged into its run section."""
        results = cls(Path(path))
        results.path.parent.mkdir(parents=True, exist_ok=True)
        with results._locked():
            if not results.path.exists():
                results._write(
                    {"schema_version": SCHEMA_VERSION, "run": {"created_at": _now_iso()}, "measurements": {}}
                )
        if run:
            results.update_run(run)
        else:
            results.read()  # refuse a foreign or damaged file now, not at the first record
        return results

    # ---- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, document: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, indent=1, sort_keys=True)
                handle.write("\n")
            # mkstemp makes the file private; results hold no secrets and CI uploads them as artefacts.
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _mutate(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._locked():
            document = _read_document(self.path)
            change(document)
            self._write(document)

    def _append(
        self,
        spec: MetricSpec,
        labels: Labels | None,
        merge: Callable[[dict[str, Any]], None],
        fresh: Callable[[], dict[str, Any]],
    ) -> None:
        label_set = _labels(labels)

        def change(document: dict[str, Any]) -> None:
            measurement = document["measurements"].setdefault(
                spec.name, {"kind": str(spec.kind), "unit": spec.unit, "entries": []}
            )
            if measurement["kind"] != spec.kind or measurement["unit"] != spec.unit:
                raise ResultsError(
                    f"{self.path}: {spec.name} is stored as {measurement['kind']} in {measurement['unit']!r} "
                    f"but the registry says {spec.kind} in {spec.unit!r}; start a new results file"
                )
            for entry in measurement["entries"]:
                if entry["labels"] == label_set:
                    merge(entry)
                    return
            measurement["entries"].append({"labels": label_set, **fresh()})

        self._mutate(change)

    def update_run(self, facts: Mapping[str, Any]) -> None:
        """Merge environment facts (nested dicts merge key by key) into the run section."""
        self._mutate(lambda document: _deep_merge(document["run"], facts))

    def record_capped_step(self, step: str, cap_s: float, requests: int, max_requests: int) -> None:
        """A load step its time limit ended (LoadResult.capped): the report names it beside its figures."""
        self.update_run({"capped_steps": {step: {"cap_s": cap_s, "requests": requests, "max_requests": max_requests}}})

    def record_latency(self, metric: str, values: Iterable[float] | HdrHistogram, labels: Labels | None = None) -> None:
        """Add latencies (in the metric's unit) or a whole histogram built with `new_histogram()`."""
        spec = _spec(metric, MetricKind.HISTOGRAM)
        if isinstance(values, HdrHistogram):
            histogram = values
            layout = (
                histogram.lowest_trackable_value,
                histogram.highest_trackable_value,
                histogram.significant_figures,
            )
            if layout != (HDR_LOWEST, HDR_HIGHEST, HDR_SIGNIFICANT_FIGURES):
                raise ResultsError(
                    f"{metric}: histogram layout {layout} differs from the results file's; "
                    "build it with harness.measure.results.new_histogram() so merges stay exact"
                )
        else:
            histogram = new_histogram()
            for value in values:
                scaled = _check_number(metric, "a latency", value) * spec.hdr_scale
                if not 0 <= scaled <= HDR_HIGHEST:
                    raise ResultsError(
                        f"{metric}: latency {value} {spec.unit} is outside "
                        f"0..{HDR_HIGHEST / spec.hdr_scale:g} {spec.unit}; a negative or hour-long latency "
                        "is a timing bug"
                    )
                histogram.record_value(round(scaled))
        encoded = encode_histogram(histogram)

        def merge(entry: dict[str, Any]) -> None:
            combined = decode_histogram(entry["histogram"], f"{self.path}: {metric}")
            combined.add(HdrHistogram.decode(encoded.encode("ascii")))
            entry["histogram"] = encode_histogram(combined)

        self._append(spec, labels, merge, lambda: {"scale": spec.hdr_scale, "histogram": encoded})

    def record_value(
        self,
        metric: str,
        value: float,
        labels: Labels | None = None,
        t: float | None = None,
        weight: int | None = None,
    ) -> None:
        """One gauge sample (CPU %, connections %, a projection), timestamped now unless `t` is given.
        `weight`: how many observations the value summarises (a recall over 1,000 queries), so a mean is
        weighted by it and its sample size counts the observations, not the samples."""
        spec = _spec(metric, MetricKind.GAUGE)
        sample: list[float] = [time.time() if t is None else t, _check_number(metric, "a value", value)]
        if weight is not None:
            if not _is_count(weight) or int(weight) == 0:
                raise ResultsError(f"{metric}: weight must be a positive integer, got {weight!r}")
            sample.append(int(weight))
        self._append(spec, labels, lambda entry: entry["samples"].append(sample), lambda: {"samples": [sample]})

    def record_rate(
        self, metric: str, hits: int, total: int, labels: Labels | None = None, t: float | None = None
    ) -> None:
        """`hits` of `total` trials in one interval (cache hits of reads, errors of invocations)."""
        spec = _spec(metric, MetricKind.RATE)
        if not (_is_count(hits) and _is_count(total) and hits <= total):
            raise ResultsError(f"{metric}: need integers 0 <= hits <= total, got hits={hits!r} total={total!r}")
        interval = [time.time() if t is None else t, int(hits), int(total)]
        self._append(spec, labels, lambda entry: entry["intervals"].append(interval), lambda: {"intervals": [interval]})

    def record_count(self, metric: str, n: int = 1, labels: Labels | None = None) -> None:
        """Add `n` events to a counter; record 0 to state that the count was taken and nothing happened."""
        spec = _spec(metric, MetricKind.COUNTER)
        if not _is_count(n):
            raise ResultsError(f"{metric}: a count must be a non-negative integer, got {n!r}")
        n = int(n)

        def merge(entry: dict[str, Any]) -> None:
            entry["count"] += n
            entry["records"] += 1

        self._append(spec, labels, merge, lambda: {"count": n, "records": 1})

    def record_series(self, metric: str, points: Iterable[Mapping[str, float]], labels: Labels | None = None) -> None:
        """Curve points with named numeric fields; each gets `t` (now) unless it carries one."""
        spec = _spec(metric, MetricKind.SERIES)
        now = time.time()
        clean = []
        for point in points:
            fields = {str(k): _check_number(metric, f"field {k}", v) for k, v in point.items()}
            if spec.plot:
                missing = {spec.plot.x_field, spec.plot.y_field} - set(fields)
                if missing:
                    raise ResultsError(
                        f"{metric}: point {dict(point)} lacks {', '.join(sorted(missing))}; "
                        f"see its MetricSpec in harness/measure/metrics.py"
                    )
            clean.append({"t": now, **fields})
        self._append(spec, labels, lambda entry: entry["points"].extend(clean), lambda: {"points": clean})

    def record_not_emulated(self, metric: str, reason: str) -> None:
        """State that `metric` cannot be measured on this backend, and why; its thresholds are then NOT
        EMULATED, not ERROR. A later reason for the same metric replaces the earlier one."""
        metric_spec(metric)
        if not reason.strip():
            raise ResultsError(f"{metric}: say why it is not emulated; an empty reason explains nothing")

        def change(document: dict[str, Any]) -> None:
            document.setdefault("not_emulated", {})[metric] = reason.strip()

        self._mutate(change)

    def read(self) -> RunResults:
        return load_results(self.path)


def _spec(metric: str, kind: MetricKind) -> MetricSpec:
    spec = metric_spec(metric)
    if spec.kind != kind:
        recorder = {
            MetricKind.HISTOGRAM: "record_latency",
            MetricKind.GAUGE: "record_value",
            MetricKind.RATE: "record_rate",
            MetricKind.COUNTER: "record_count",
            MetricKind.SERIES: "record_series",
        }[spec.kind]
        raise ResultsError(f"{metric} is a {spec.kind} metric; record it with {recorder}()")
    return spec


# ---- reading ------------------------------------------------------------------------------------


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read results ({exc.strerror}); check the path") from None
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError, text that is not UTF-8, nesting past the parser's recursion: not a file the harness wrote.
        raise ResultsError(
            f"{path}: not valid JSON ({brief(exc)}); the file is damaged, re-run the scenarios"
        ) from None
    if not isinstance(document, dict) or "measurements" not in document or "run" not in document:
        raise ResultsError(f"{path}: not a results document (no run/measurements sections)")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: results schema_version is {version!r}; this harness reads {SCHEMA_VERSION}")
    return document


@dataclass(frozen=True)
class Figure:
    """A computed statistic in the metric's unit, with the number of samples behind it."""

    value: float
    sample_size: int
    # 95 % confidence interval in the metric's unit, for percentiles and rates (harness/measure/confidence.py).
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class MetricData:
    """All entries of one metric, merged on demand. Statistics are over every label set."""

    name: str
    kind: MetricKind
    unit: str
    entries: tuple[dict[str, Any], ...]
    origin: str

    def label_sets(self) -> list[dict[str, str]]:
        return [dict(entry["labels"]) for entry in self.entries]

    def _entries(self, labels: Mapping[str, str] | None) -> list[dict[str, Any]]:
        wanted = _labels(labels)
        return [e for e in self.entries if all(e["labels"].get(k) == v for k, v in wanted.items())]

    @property
    def hdr_scale(self) -> int:
        scales = {int(entry["scale"]) for entry in self.entries}
        if len(scales) > 1:
            raise ResultsError(f"{self.origin}: {self.name} mixes histogram scales {sorted(scales)}; re-run")
        return scales.pop() if scales else 1

    def histogram(self, labels: Mapping[str, str] | None = None) -> HdrHistogram:
        merged = new_histogram()
        for entry in self._entries(labels):
            part = decode_histogram(entry["histogram"], f"{self.origin}: {self.name}")
            if part.get_total_count():
                merged.add(part)
        return merged

    def samples(self, labels: Mapping[str, str] | None = None) -> list[tuple[float, float]]:
        """Gauge samples as (t, value), oldest first."""
        found = [(float(s[0]), float(s[1])) for e in self._entries(labels) for s in e["samples"]]
        return sorted(found, key=lambda sample: sample[0])

    def weighted_samples(self) -> list[tuple[float, int]]:
        """Gauge values with the number of observations each summarises (1 when not stated)."""
        return [(float(s[1]), int(s[2]) if len(s) > 2 else 1) for e in self.entries for s in e["samples"]]

    def intervals(self, labels: Mapping[str, str] | None = None) -> list[tuple[float, int, int]]:
        """Rate intervals as (t, hits, total), oldest first."""
        found = [(float(t), int(h), int(n)) for e in self._entries(labels) for t, h, n in e["intervals"]]
        return sorted(found, key=lambda interval: interval[0])

    def points(self, labels: Mapping[str, str] | None = None) -> list[dict[str, float]]:
        return [dict(p) for e in self._entries(labels) for p in e["points"]]

    def count(self) -> tuple[int, int]:
        """Counter total and the number of records behind it."""
        return (sum(int(e["count"]) for e in self.entries), sum(int(e["records"]) for e in self.entries))

    def fraction_in_unit(self, fraction: float) -> float:
        """A 0..1 fraction expressed in this rate metric's unit (% gives 0..100)."""
        if self.unit != DIMENSIONLESS and unit_family(self.unit) == "fraction":
            return convert(fraction, "ratio", self.unit)
        return fraction

    def statistic(self, statistic: Statistic) -> Figure:
        """The statistic in the metric's unit; raises MeasurementError when nothing was recorded."""
        match self.kind:
            case MetricKind.HISTOGRAM:
                return self._histogram_statistic(statistic)
            case MetricKind.GAUGE:
                return self._gauge_statistic(statistic)
            case MetricKind.RATE:
                return self._rate_statistic(statistic)
            case MetricKind.COUNTER:
                if statistic.name != "count":
                    raise MeasurementError(f"{self.name} is a counter; only count applies")
                total, records = self.count()
                return Figure(float(total), records)
            case _:
                raise MeasurementError(f"{self.name} is a {self.kind}; it has points, not statistics")

    def _histogram_statistic(self, statistic: Statistic) -> Figure:
        histogram = self.histogram()
        n = histogram.get_total_count()
        if statistic.name == "count":
            return Figure(float(n), n)
        if n == 0:
            raise MeasurementError(f"{self.name} was recorded with no samples; the scenario measured nothing")
        scale = self.hdr_scale
        if statistic.percentile is not None:
            raw = histogram.get_value_at_percentile(statistic.percentile)
            low, high = percentile_interval(
                n, statistic.percentile, lambda rank: histogram.get_value_at_percentile(100.0 * rank / n)
            )
            return Figure(raw / scale, n, (low / scale, high / scale))
        elif statistic.name == "min":
            raw = histogram.get_min_value()
        elif statistic.name == "max":
            raw = histogram.get_max_value()
        elif statistic.name == "mean":
            raw = histogram.get_mean_value()
        else:
            raise MeasurementError(f"statistic {statistic} does not apply to histogram {self.name}")
        return Figure(raw / scale, n)

    def _gauge_statistic(self, statistic: Statistic) -> Figure:
        values = [v for _, v in self.samples()]
        n = len(values)
        if statistic.name == "count":
            return Figure(float(n), n)
        if n == 0:
            raise MeasurementError(f"{self.name} was recorded with no samples; the scenario measured nothing")
        if statistic.percentile is not None:
            # Nearest rank, the definition HDR histograms use, so gauges and histograms read alike.
            value = float(np.percentile(values, statistic.percentile, method="inverted_cdf"))
            ordered = sorted(values)
            interval = percentile_interval(n, statistic.percentile, lambda rank: ordered[rank - 1])
            return Figure(value, n, interval)
        elif statistic.name == "value":
            value = values[-1]
        elif statistic.name == "mean":
            weighted = self.weighted_samples()
            observations = sum(w for _, w in weighted)
            # A recall over 1,000 queries outweighs one over 10, and N counts the queries.
            return Figure(sum(v * w for v, w in weighted) / observations, observations)
        elif statistic.name in ("min", "max"):
            reduce: Any = {"min": np.min, "max": np.max}[statistic.name]
            value = float(reduce(values))
        else:
            raise MeasurementError(f"statistic {statistic} does not apply to gauge {self.name}")
        return Figure(value, n)

    def _rate_statistic(self, statistic: Statistic) -> Figure:
        intervals = self.intervals()
        hits = sum(h for _, h, _ in intervals)
        total = sum(n for _, _, n in intervals)
        if statistic.name == "count":
            return Figure(float(total), total)
        if statistic.name != "rate":
            raise MeasurementError(f"statistic {statistic} does not apply to rate {self.name}")
        if total == 0:
            raise MeasurementError(f"{self.name} has no trials (total 0); the rate is undefined")
        low, high = wilson_interval(hits, total)
        return Figure(
            self.fraction_in_unit(hits / total), total, (self.fraction_in_unit(low), self.fraction_in_unit(high))
        )


@dataclass(frozen=True)
class RunResults:
    path: Path
    run: dict[str, Any]
    measurements: dict[str, MetricData]
    # Metric -> why this backend cannot measure it (ResultsWriter.record_not_emulated).
    not_emulated: dict[str, str] = field(default_factory=dict)

    def get(self, metric: str) -> MetricData | None:
        return self.measurements.get(metric)


def load_results(path: Path | str) -> RunResults:
    """Read a results document (no lock needed: writers replace the file atomically)."""
    path = Path(path)
    document = _read_document(path)
    measurements = {}
    for name, raw in document["measurements"].items():
        try:
            kind = MetricKind(raw["kind"])
            measurements[name] = MetricData(name, kind, str(raw["unit"]), tuple(raw["entries"]), str(path))
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{path}: measurement {name} is malformed ({exc}); the file is damaged") from None
    not_emulated = document.get("not_emulated", {})
    if not isinstance(not_emulated, dict) or not all(isinstance(v, str) for v in not_emulated.values()):
        raise ResultsError(f"{path}: not_emulated must map metric names to reasons; the file is damaged")
    return RunResults(path, dict(document["run"]), measurements, {str(k): v for k, v in not_emulated.items()})
