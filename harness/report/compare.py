"""`harness report compare A B`: two runs' figures side by side, with the change in each; with `--judged`,
what each run's report judged (figure, N, status per threshold), e.g. the same sign-off on two backends.

A regression check reads the direction column: each metric in the registry says whether lower or
higher is better, so a change is labelled better or worse rather than left for the reader to decode.
Counts (how many samples or points) are volume, not quality, and get no direction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.measure.metrics import REGISTRY
from harness.measure.results import ResultsError, RunResults, load_results
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


REPORT_FILE_NAME = "report.json"


@dataclass(frozen=True)
class JudgedRun:
    """What a rendered report judged: the run's backend and verdict, and each threshold's figure and status."""

    label: str
    backend: str
    verdict: str
    checklist: dict[str, int]
    thresholds: dict[str, dict[str, object]]


def load_judged(path: Path) -> JudgedRun:
    """A report.json, or a report directory holding one; ResultsError when it cannot be read as one."""
    file = path / REPORT_FILE_NAME if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
        return JudgedRun(
            label=str(file),
            backend=str(data.get("run", {}).get("backend", "?")),
            verdict=str(data["verdict"]),
            checklist={str(k): int(v) for k, v in data.get("checklist_counts", {}).items()},
            thresholds={str(t["id"]): t for t in data["thresholds"]},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(
            f"{file} is not a rendered report ({type(exc).__name__}: {exc}); pass a report directory "
            "written by `harness signoff` or `harness report render`"
        ) from None


def _judged_cell(entry: dict[str, object] | None) -> tuple[str, str, str]:
    if entry is None:
        return "-", "-", "not judged"
    measured, size, status = entry.get("measured"), entry.get("sample_size"), str(entry.get("status", "?"))
    if not isinstance(measured, int | float):
        return "-", "-", status
    value = format_value(float(measured), str(entry.get("unit") or ""))
    return f"{entry.get('statistic') or ''} {value}".strip(), "-" if size is None else f"{size:,}", status


def compare_judged(a: JudgedRun, b: JudgedRun, markdown: bool = False) -> str:
    """Every threshold either report judged, with each run's figure, N and status side by side."""
    headers = ("THRESHOLD", "LEVEL", f"{a.backend.upper()} A", "N", "STATUS", f"{b.backend.upper()} B", "N", "STATUS")
    rows = []
    for threshold_id in sorted(set(a.thresholds) | set(b.thresholds)):
        ta, tb = a.thresholds.get(threshold_id), b.thresholds.get(threshold_id)
        either = ta or tb
        assert either is not None, "the threshold came from one of the two reports"
        level = str(either.get("warning") or either.get("critical") or "")
        rows.append((threshold_id, level, *_judged_cell(ta), *_judged_cell(tb)))
    differ = sum(row[4] != row[7] for row in rows)
    summary = [
        f"verdict: A {a.verdict}, B {b.verdict}",
        "checklist: A " + _counts(a.checklist) + "; B " + _counts(b.checklist),
        f"{differ} of {len(rows)} threshold(s) judged differently.",
    ]
    if markdown:
        table = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
        table += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join([f"A: {a.label}  ", f"B: {b.label}", "", *table, "", *summary])
    return "\n".join([f"A: {a.label}", f"B: {b.label}", "", *fixed_width(headers, rows), "", *summary])


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none"
