"""The headline figures of each measured metric: what the report tabulates and `compare` diffs."""

from __future__ import annotations

from dataclasses import dataclass

from harness.measure.metrics import MetricKind, Statistic, convert, unit_family
from harness.measure.results import MeasurementError, MetricData, RunResults

SUMMARY_STATISTICS: dict[MetricKind, tuple[Statistic, ...]] = {
    MetricKind.HISTOGRAM: (
        Statistic("count"),
        Statistic("min"),
        Statistic("p", 50),
        Statistic("p", 95),
        Statistic("p", 99),
        Statistic("max"),
        Statistic("mean"),
    ),
    MetricKind.GAUGE: (
        Statistic("count"),
        Statistic("min"),
        Statistic("mean"),
        Statistic("max"),
        Statistic("value"),
    ),
    MetricKind.RATE: (Statistic("count"), Statistic("rate")),
    MetricKind.COUNTER: (Statistic("count"),),
}


@dataclass(frozen=True)
class MetricSummary:
    name: str
    kind: MetricKind
    unit: str
    # Statistic name (p95, max...) to value in the metric's unit; absent when it cannot be computed.
    values: dict[str, float]
    label_sets: int

    def text(self) -> str:
        """The figures as one line for a table cell."""
        return "; ".join(f"{name} {format_value(v, figure_unit(name, self.unit))}" for name, v in self.values.items())


# Figures that say how much was measured, not how well: plain numbers, and no better or worse.
VOLUME_FIGURES = ("count", "points")


def figure_unit(statistic: str, unit: str) -> str:
    return "" if statistic in VOLUME_FIGURES else unit


def summarize_metric(data: MetricData) -> MetricSummary:
    values: dict[str, float] = {}
    if data.kind is MetricKind.SERIES:
        values["points"] = float(len(data.points()))
    for statistic in SUMMARY_STATISTICS.get(data.kind, ()):
        try:
            values[str(statistic)] = data.statistic(statistic).value
        except MeasurementError:
            continue  # an empty measurement has a count and nothing else; the table shows the gap
    return MetricSummary(data.name, data.kind, data.unit, values, len(data.entries))


def summarize(results: RunResults) -> list[MetricSummary]:
    return [summarize_metric(results.measurements[name]) for name in sorted(results.measurements)]


def format_value(value: float | None, unit: str = "") -> str:
    """A figure for people: thousands separators for large numbers, 4 significant digits otherwise."""
    if value is None:
        return "-"
    if unit and unit_family(unit) == "bytes":
        # Decimal prefixes, as thresholds are written (`value <= 5GB`).
        unit = next((u for u in ("GB", "MB", "kB") if abs(convert(value, "bytes", u)) >= 1), "B")
        value = convert(value, "bytes", unit) if unit != "B" else value
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    # A ratio (recall) reads best bare: 0.96, not 0.96 ratio.
    if not unit or unit == "ratio":
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"
