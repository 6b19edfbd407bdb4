"""Charts for the HTML report, each threshold drawn as a line where its metric is plotted.

Figures are built with matplotlib's object API (no pyplot): nothing global is touched, no display is
needed, and rendering is the Agg/SVG path only. Each chart is an SVG embedded as a data URI, which keeps
the report one self-contained file and keeps the SVGs' internal ids from colliding with each other.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import matplotlib
import numpy as np
from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.measure.metrics import CHART_TITLES, REGISTRY, MetricKind, convert, unit_family
from harness.measure.results import MetricData, RunResults
from harness.thresholds import ThresholdResult

WARNING_COLOUR = "#c77700"
CRITICAL_COLOUR = "#b3261e"
REFERENCE_COLOUR = "#555555"
# Where a level sits on a value axis, these statistics are values of the metric itself.
_VALUE_STATS = ("p", "min", "max", "mean", "value", "rate")


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    caption: str
    svg: bytes

    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode("ascii")


@dataclass(frozen=True)
class _Line:
    level: float
    level_name: str
    label: str
    percentile: float | None


def _threshold_lines(metrics: Sequence[str], evaluation: Sequence[ThresholdResult]) -> list[_Line]:
    """One line per distinct level of the thresholds on these metrics (the three Lambda functions
    share levels, and one line says it once)."""
    lines: dict[tuple[float, str, str], _Line] = {}
    for result in evaluation:
        t = result.threshold
        if t.metric not in metrics or t.condition.statistic.family not in _VALUE_STATS:
            continue
        for level_name in ("warning", "critical"):
            condition = getattr(t, level_name)
            level = t.level(level_name)
            if condition is None or level is None:
                continue
            key = (level, level_name, str(condition.statistic))
            lines.setdefault(
                key, _Line(level, level_name, f"{level_name}: {condition}", condition.statistic.percentile)
            )
    return sorted(lines.values(), key=lambda line: (line.level_name, line.level))


def _style(level_name: str) -> dict[str, Any]:
    if level_name == "critical":
        return {"color": CRITICAL_COLOUR, "linestyle": "-", "linewidth": 1.4}
    return {"color": WARNING_COLOUR, "linestyle": "--", "linewidth": 1.4}


def _draw_levels(
    ax: Axes, lines: Sequence[_Line], vertical: bool, mark_percentile: bool = False, scale: float = 1.0
) -> None:
    """Threshold levels as lines; on a CDF, also a dotted line at the percentile each one tests."""
    for line in lines:
        if vertical:
            ax.axvline(line.level * scale, label=line.label, **_style(line.level_name))
            if mark_percentile and line.percentile is not None:
                ax.axhline(line.percentile, color="#999999", linestyle=":", linewidth=0.8)
        else:
            ax.axhline(line.level * scale, label=line.label, **_style(line.level_name))


def _display(unit: str) -> tuple[float, str]:
    """(multiplier, axis label) for plotting values of this unit: bytes read best in MiB."""
    if unit and unit_family(unit) == "bytes":
        return convert(1.0, unit, "MiB"), "MiB"
    return 1.0, unit or "count"


def _label_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def _series_name(data: MetricData, labels: dict[str, str], several_metrics: bool) -> str:
    parts = []
    if several_metrics:
        # lambda.data_export.duration_ms -> data_export: the group title names the measure.
        parts.append(data.name.split(".")[1] if data.name.count(".") >= 2 else data.name)
    if labels:
        parts.append(_label_text(labels))
    return " ".join(parts) or data.name


def _cdf_points(histogram: HdrHistogram, scale: int) -> tuple[list[float], list[float]]:
    """(value, % of samples at or below) per non-empty bucket; reading the counts array directly is
    two orders of magnitude faster than the package's pure-Python recorded-value iterator."""
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    filled = np.nonzero(counts)[0]
    cumulative = np.cumsum(counts[filled]) * (100.0 / histogram.get_total_count())
    xs = [histogram.get_min_value() / scale]
    xs += [histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(i))) / scale for i in filled]
    return xs, [0.0, *cumulative.tolist()]


def _cdf(ax: Axes, group: Sequence[MetricData], lines: Sequence[_Line]) -> None:
    low, high = float("inf"), 0.0
    for data in group:
        scale = data.hdr_scale
        label_sets = data.label_sets()
        selections: list[dict[str, str] | None] = [None] if len(label_sets) <= 1 else [*label_sets, None]
        for labels in selections:
            histogram = data.histogram(labels)
            total = histogram.get_total_count()
            if not total:
                continue
            xs, ys = _cdf_points(histogram, scale)
            name = (
                _series_name(data, labels or {}, len(group) > 1)
                if labels
                else (_series_name(data, {}, len(group) > 1) + (" (all)" if len(label_sets) > 1 else ""))
            )
            ax.step(xs, ys, where="post", label=f"{name} (n={total:,})", linewidth=1.6)
            low, high = min(low, max(xs[0], 1e-3)), max(high, xs[-1])
    _draw_levels(ax, lines, vertical=True, mark_percentile=True)
    levels = [line.level for line in lines if line.level > 0]
    if levels and high > 0:
        high = max(high, *levels)
        low = min(low, *levels)
    if high / max(low, 1e-9) > 50:
        ax.set_xscale("log")
    ax.set_ylim(0, 100.5)
    ax.set_ylabel("percentile (% of samples at or below)")
    ax.set_xlabel(_display(group[0].unit)[1])


def _timeline(ax: Axes, group: Sequence[MetricData], lines: Sequence[_Line], rate: bool) -> None:
    starts = [
        (data.intervals()[0][0] if rate else data.samples()[0][0])
        for data in group
        if (data.intervals() if rate else data.samples())
    ]
    origin = min(starts) if starts else 0.0
    scale, unit_label = _display(group[0].unit)
    for data in group:
        label_sets = data.label_sets()
        for labels in label_sets if len(label_sets) > 1 else [{}]:
            if rate:
                points = [(t, data.fraction_in_unit(h / n)) for t, h, n in data.intervals(labels) if n]
            else:
                points = data.samples(labels)
            if not points:
                continue
            xs = [t - origin for t, _ in points]
            ys = [v * scale for _, v in points]
            marker = "o" if len(points) < 30 else None
            ax.plot(
                xs,
                ys,
                marker=marker,
                markersize=3,
                linewidth=1.6,
                label=_series_name(data, labels, len(group) > 1),
            )
    spec = REGISTRY.get(group[0].name)
    for value, text in spec.reference_lines if spec else ():
        ax.axhline(value * scale, color=REFERENCE_COLOUR, linewidth=1.0, linestyle="-.", label=text)
    _draw_levels(ax, lines, vertical=False, scale=scale)
    ax.set_xlabel("seconds since the first sample")
    ax.set_ylabel(unit_label + (" per interval" if rate else ""))


def _series(ax: Axes, data: MetricData, evaluation: Sequence[ThresholdResult]) -> None:
    spec = REGISTRY[data.name]
    plot = spec.plot
    assert plot is not None
    for labels in data.label_sets() if len(data.label_sets()) > 1 else [{}]:
        points = sorted(
            (p for p in data.points(labels) if plot.x_field in p and plot.y_field in p),
            key=lambda p: p[plot.x_field],
        )
        xs = [p[plot.x_field] for p in points]
        ys = [p[plot.y_field] for p in points]
        ax.plot(xs, ys, marker="o", linewidth=1.6, label=_label_text(labels) or data.name)
        if plot.point_label_field:
            for p in points:
                if plot.point_label_field in p:
                    ax.annotate(
                        f"{plot.point_label_field}={p[plot.point_label_field]:g}",
                        (p[plot.x_field], p[plot.y_field]),
                        textcoords="offset points",
                        xytext=(4, -10),
                        fontsize=7,
                    )
    if plot.x_threshold_metric:
        _draw_levels(ax, _threshold_lines([plot.x_threshold_metric], evaluation), vertical=True)
    if plot.y_threshold_metric:
        _draw_levels(ax, _threshold_lines([plot.y_threshold_metric], evaluation), vertical=False)
    ax.set_xlabel(plot.x_label)
    ax.set_ylabel(plot.y_label)


def _caption(metrics: Sequence[str], lines: Sequence[_Line], extra: str = "") -> str:
    described = "; ".join(f"{m}: {REGISTRY[m].description}" for m in metrics if m in REGISTRY)
    drawn = (
        "Threshold lines: " + "; ".join(line.label for line in lines) + "." if lines else "No thresholds on this chart."
    )
    return " ".join(part for part in (described + ".", extra, drawn) if part)


def render_svg(title: str, draw: Callable[[Axes], None]) -> bytes:
    # Fixed margins rather than constrained layout: the layout engine doubled the render time.
    figure = Figure(figsize=(8.5, 4.2), dpi=100)
    figure.subplots_adjust(left=0.09, right=0.98, top=0.92, bottom=0.12)
    ax = figure.add_subplot()
    draw(ax)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _points_over_time(group: Sequence[MetricData], kind: MetricKind) -> int:
    """Most points any metric of the group has; one point (a projection, say) is a number, not a chart."""
    return max(len(d.intervals() if kind is MetricKind.RATE else d.samples()) for d in group)


def _groups(results: RunResults) -> dict[str, list[MetricData]]:
    """Measured metrics grouped by chart, in registry order (unregistered ones last, alone)."""
    order = {name: i for i, name in enumerate(REGISTRY)}
    groups: dict[str, list[MetricData]] = {}
    for name in sorted(results.measurements, key=lambda n: (order.get(n, len(order)), n)):
        spec = REGISTRY.get(name)
        groups.setdefault(spec.chart_id if spec else name, []).append(results.measurements[name])
    return groups


def build_charts(results: RunResults, evaluation: Sequence[ThresholdResult]) -> list[Chart]:
    charts = []
    # Fixed hash salt: the same results render to the same bytes, so reports diff cleanly.
    with matplotlib.rc_context({"svg.hashsalt": "dbunit-harness", "svg.fonttype": "path", "font.size": 9}):
        for chart_id, group in _groups(results).items():
            kind = group[0].kind
            names = [d.name for d in group]
            title = CHART_TITLES.get(chart_id) or (REGISTRY[names[0]].title if names[0] in REGISTRY else names[0])
            lines = _threshold_lines(names, evaluation)
            if kind is MetricKind.HISTOGRAM:
                svg = render_svg(title, partial(_cdf, group=group, lines=lines))
                extra = "Curves are cumulative distributions; dotted lines mark the percentile a threshold tests."
            elif kind in (MetricKind.GAUGE, MetricKind.RATE) and _points_over_time(group, kind) > 1:
                is_rate = kind is MetricKind.RATE
                svg = render_svg(title, partial(_timeline, group=group, lines=lines, rate=is_rate))
                extra = "Each point is one recorded interval." if is_rate else ""
            elif kind is MetricKind.SERIES and names[0] in REGISTRY and REGISTRY[names[0]].plot:
                svg = render_svg(title, partial(_series, data=group[0], evaluation=evaluation))
                plot = REGISTRY[names[0]].plot
                assert plot is not None
                lines = _threshold_lines(
                    [m for m in (plot.x_threshold_metric, plot.y_threshold_metric) if m], evaluation
                )
                extra = ""
            else:
                continue  # counters and one-off values are single numbers: the tables say all there is
            charts.append(Chart(chart_id, title, _caption(names, lines, extra), svg))
    return charts


def fresh_drained_chart(rows: Sequence[tuple[str, float | None, float | None, float]]) -> Chart | None:
    """Fresh against drained, one pair of bars per threshold: (label, fresh, drained, critical level), each
    figure drawn as a multiple of its critical level so thresholds of different units share one log axis."""
    drawn = [(label, fresh, drained, level) for label, fresh, drained, level in rows if level]
    if not drawn:
        return None

    def ratio(value: float | None, level: float) -> float:
        return max(abs(value) / abs(level), 1e-3) if value is not None else 0.0

    def draw(ax: Axes) -> None:
        y = np.arange(len(drawn))
        fresh = [ratio(f, level) for _, f, _, level in drawn]
        drained = [ratio(d, level) for _, _, d, level in drawn]
        ax.barh(y - 0.2, fresh, height=0.4, label="fresh", color="#4a7bb7")
        ax.barh(y + 0.2, drained, height=0.4, label="drained", color="#b35a1e")
        ax.axvline(1.0, color=CRITICAL_COLOUR, linestyle="--", label="critical level")
        ax.set_xscale("log")
        ax.set_yticks(y, [label for label, *_ in drawn], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("measured / critical level (log)")

    return Chart(
        "fresh-drained",
        "Fresh and drained against the critical levels",
        "Each threshold the drained pass measured, as a multiple of its critical level: for '<' levels a bar past "
        "the dashed line breaches it, for '>=' levels a bar short of it does (the label gives the level).",
        render_svg("Fresh and drained against the critical levels", draw),
    )
