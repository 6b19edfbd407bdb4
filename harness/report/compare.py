"""`harness report compare A B`: two runs' figures side by side, with the change in each.

A regression check reads the direction column: each metric in the registry says whether lower or
higher is better, so a change is labelled better or worse rather than left for the reader to decode.
Counts (how many samples or points) are volume, not quality, and get no direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.measure.metrics import REGISTRY
from harness.measure.results import RunResults, load_results
from harness.report.figures import VOLUME_FIGURES, figure_unit, format_value, summarize
from harness.report.text import fixed_width

# Changes smaller than this fraction of the baseline are noise in a load test, not a direction.
SAME_WITHIN = 0.01
RESULTS_FILE_NAME = "results.json"


@dataclass(frozen=True)
class Change:
    metric: str
    statistic: str
    unit: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def delta_pct(self) -> float | None:
        if self.delta is None or not self.a:
            return None
        return 100.0 * self.delta / abs(self.a)

    @property
    def assessment(self) -> str:
        """better / worse / same / '' (no direction, or a figure missing on one side)."""
        spec = REGISTRY.get(self.metric)
        if self.delta is None or spec is None or spec.better is None or self.statistic in VOLUME_FIGURES:
            return ""
        if abs(self.delta) <= SAME_WITHIN * max(abs(self.a or 0.0), 1e-12):
            return "same"
        return "better" if (self.delta < 0) == (spec.better == "lower") else "worse"


def compare_runs(a: RunResults, b: RunResults) -> list[Change]:
    """Every summary figure of every metric either run measured."""
    summaries_a = {s.name: s for s in summarize(a)}
    summaries_b = {s.name: s for s in summarize(b)}
    changes = []
    for metric in sorted(set(summaries_a) | set(summaries_b)):
        sa, sb = summaries_a.get(metric), summaries_b.get(metric)
        either = sa or sb
        assert either is not None, "the metric came from one of the two runs"
        unit = either.unit
        stats = list((sa.values if sa else {}).keys())
        stats += [s for s in (sb.values if sb else {}) if s not in stats]
        for stat in stats:
            changes.append(
                Change(
                    metric,
                    stat,
                    unit,
                    sa.values.get(stat) if sa else None,
                    sb.values.get(stat) if sb else None,
                )
            )
    return changes


def format_comparison(changes: list[Change], label_a: str, label_b: str) -> str:
    rows = []
    for c in changes:
        unit = figure_unit(c.statistic, c.unit)
        delta = "-" if c.delta is None else format_value(c.delta, unit)
        if c.delta is not None and c.delta > 0:
            delta = "+" + delta
        pct = "-" if c.delta_pct is None else f"{c.delta_pct:+.1f}%"
        rows.append(
            (
                c.metric,
                c.statistic,
                format_value(c.a, unit),
                format_value(c.b, unit),
                delta,
                pct,
                c.assessment,
            )
        )
    worse = sum(c.assessment == "worse" for c in changes)
    lines = [f"A: {label_a}", f"B: {label_b}", ""]
    lines += fixed_width(("METRIC", "STAT", "A", "B", "CHANGE", "CHANGE %", "B IS"), rows)
    lines += ["", f"{worse} figure(s) worse in B than in A (changes within {SAME_WITHIN:.0%} count as same)."]
    return "\n".join(lines)


def resolve_results_path(path: Path) -> Path:
    """A results file, or a report directory holding one (render copies it there)."""
    return path / RESULTS_FILE_NAME if path.is_dir() else path


def compare_paths(a: Path, b: Path) -> str:
    path_a, path_b = resolve_results_path(a), resolve_results_path(b)
    return format_comparison(compare_runs(load_results(path_a), load_results(path_b)), str(path_a), str(path_b))
