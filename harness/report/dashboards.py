"""The document's four CloudWatch dashboards drawn widget by widget in the sign-off report.

Each widget is drawn from the datapoints its own definition gives over the run (metric, dimensions,
statistic, period), read back from the stack's CloudWatch at the end of the scenario session and kept in
results.json (`run.cloudwatch.dashboards`, harness/monitoring/evidence.py), with the alarm levels the
dashboard carries as horizontal lines. A widget whose metric has no datapoint in the run says so; one on
resources the local unit lacks (VPC, NAT gateway, the bill) says NOT EMULATED and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from html import escape
from typing import Any

from matplotlib.axes import Axes

from harness.monitoring.dashboards import DASHBOARDS, dashboard_name
from harness.report.charts import CRITICAL_COLOUR, WARNING_COLOUR, Chart, render_svg

DASHBOARD_HEADERS = ("dashboard", "widget", "in this report")
NOT_RECORDED = (
    "not recorded in this run: the dashboards' datapoints are read from the stack's CloudWatch at the end of a "
    "scenario session (embedded stack)"
)


@dataclass(frozen=True)
class Widget:
    dashboard: str
    title: str
    status: str
    chart: Chart | None


def _draw(ax: Axes, widget: Mapping[str, Any], origin: float) -> None:
    lines = [line for line in widget.get("lines", []) if line.get("points")]
    # A widget's `yAxis: right` lines (freeable memory beside CPU %) get their own axis, as on the dashboard.
    right = ax.twinx() if any(line.get("y_axis") == "right" for line in lines) else None
    for i, line in enumerate(lines):
        points = line["points"]
        label = f"{line['metric']} {line.get('dimensions', '')}".strip()
        on_right = right is not None and line.get("y_axis") == "right"
        colour = f"C{i}"
        (right if on_right and right is not None else ax).plot(
            [t - origin for t, _ in points],
            [v for _, v in points],
            marker="o" if len(points) < 30 else None,
            markersize=3,
            linewidth=1.6,
            color=colour,
            label=None if on_right else label,
        )
        if on_right and right is not None:
            # The legend is drawn from the left axis: the right axis's lines are named there.
            ax.plot([], [], color=colour, linewidth=1.6, label=f"{label} (right axis)")
            right.set_ylabel(str(line["metric"]))
    for level in widget.get("levels", []):
        colour = CRITICAL_COLOUR if level.get("label") == "critical" else WARNING_COLOUR
        ax.axhline(float(level["value"]), color=colour, linestyle="--", linewidth=1.2, label=str(level.get("label")))
    ax.set_xlabel(f"seconds since the session started ({widget.get('stat')} per {widget.get('period_s')} s period)")


def _status(widget: Mapping[str, Any]) -> tuple[str, bool]:
    """(what the row says, whether there is something to draw)."""
    if widget.get("not_emulated"):
        return f"NOT EMULATED: {widget['not_emulated']}", False
    lines = widget.get("lines", [])
    drawn = [line for line in lines if line.get("points")]
    parts = []
    if drawn:
        n = sum(len(line["points"]) for line in drawn)
        parts.append(f"drawn: {n} datapoints of {', '.join(line['metric'] for line in drawn)}")
    for line in lines:
        if line.get("not_emulated"):
            parts.append(f"{line['metric']}: {line['not_emulated']}")
        elif not line.get("points"):
            parts.append(f"{line['metric']} ({line.get('dimensions') or 'no dimensions'}): no datapoint in this run")
    return "; ".join(parts), bool(drawn)


def dashboard_widgets(run: Mapping[str, Any]) -> list[Widget]:
    facts = run.get("cloudwatch")
    recorded = facts.get("dashboards") if isinstance(facts, Mapping) else None
    if not isinstance(recorded, Mapping):
        return []
    origin = float(recorded.get("since") or 0.0)
    widgets: list[Widget] = []
    order = {dashboard_name(kind): i for i, kind in enumerate(DASHBOARDS)}
    found = dict(recorded.get("dashboards", {}))
    for name in sorted(found, key=lambda n: (order.get(n, len(order)), n)):
        dashboard = found[name]
        for widget in dashboard.get("widgets", []):
            status, drawable = _status(widget)
            if not dashboard.get("on_stack"):
                status = f"the dashboard is not on the stack; {status}"
            chart = None
            if drawable:
                title = f"{name}: {widget['title']}"
                chart = Chart(
                    f"dashboard-{name}-{len(widgets)}",
                    title,
                    status,
                    render_svg(title, partial(_draw, widget=widget, origin=origin)),
                )
            widgets.append(Widget(str(name), str(widget.get("title")), status, chart))
    return widgets


def dashboard_rows(widgets: Sequence[Widget]) -> list[tuple[str, ...]]:
    if not widgets:
        return [("all four", "-", NOT_RECORDED)]
    return [(w.dashboard, w.title, w.status) for w in widgets]


def dashboards_html(widgets: Sequence[Widget]) -> str:
    """The drawn widgets, dashboard by dashboard, after the table that lists every widget."""
    parts = []
    current = None
    for widget in widgets:
        if widget.chart is None:
            continue
        if widget.dashboard != current:
            current = widget.dashboard
            parts.append(f"<h3>{escape(current)}</h3>")
        parts.append(
            f'<figure id="chart-{escape(widget.chart.chart_id)}">'
            f'<img src="{widget.chart.data_uri()}" alt="{escape(widget.chart.title)}">'
            f"<figcaption>{escape(widget.chart.caption)}</figcaption></figure>"
        )
    return "\n".join(parts) + "\n"
