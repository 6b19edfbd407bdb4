"""Fresh against drained, side by side: the report section of `harness signoff --drained`.

The drained pass writes its own results file beside the fresh one (the run facts' `drained_pass` name it
and hold the caps read back from the kernel). Each threshold the drained pass measured is judged on both
files by the same levels; the section shows the two figures and statuses in one row. The drained verdict
is the worst of those thresholds and of the pass's own scenario checks; the sign-off's verdict is the
worse of the fresh and the drained one (a unit that passes only while rested does not pass). A pass that
could not run, or whose results are missing, is BROKEN, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.results import RunResults, load_results
from harness.thresholds import ExitCode, ThresholdResult, ThresholdSet, exit_code
from harness.thresholds.evaluate import evaluate_threshold

DRAINED_RESULTS_FILE = "results-drained.json"
DRAINED_TITLE = "Fresh and drained side by side"
DRAINED_HEADERS = ("threshold", "statistic", "levels", "fresh", "fresh status", "drained", "drained status")


@dataclass(frozen=True)
class DrainedRow:
    fresh: ThresholdResult
    drained: ThresholdResult

    def as_json(self) -> dict[str, Any]:
        t = self.fresh.threshold
        return {
            "id": t.id,
            "statistic": str(t.condition.statistic),
            "unit": t.unit,
            "fresh": self.fresh.measured,
            "fresh_status": self.fresh.status.value,
            "fresh_n": self.fresh.sample_size,
            "drained": self.drained.measured,
            "drained_status": self.drained.status.value,
            "drained_n": self.drained.sample_size,
        }


@dataclass(frozen=True)
class DrainedComparison:
    rows: list[DrainedRow]
    exit_code: int
    detail: str  # why the pass is BROKEN, or ""
    # Steps of the drained pass that their time limit ended (the drained results' run facts).
    capped_steps: dict[str, Any]

    def chart_rows(self) -> list[tuple[str, float | None, float | None, float]]:
        """(label, fresh, drained, critical level) for the report's chart."""
        out = []
        for row in self.rows:
            level = row.fresh.threshold.level("critical") or row.fresh.threshold.level("warning")
            if level:
                out.append((_chart_label(row.fresh), row.fresh.measured, row.drained.measured, level))
        return out

    def as_json(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "detail": self.detail,
            "rows": [row.as_json() for row in self.rows],
            "caps": facts.get("caps_after") or facts.get("caps_before"),
            "capped_steps": self.capped_steps,
            "step_cap_s": facts.get("step_cap_s"),
            "duration_s": facts.get("duration_s"),
            "scenario_checks": facts.get("scenario_checks"),
        }


def _chart_label(result: ThresholdResult) -> str:
    t = result.threshold
    return f"{t.id} ({t.critical or t.warning})"


def compare_passes(thresholds: ThresholdSet, fresh: RunResults, drained: RunResults) -> list[DrainedRow]:
    """Every threshold the drained pass measured, judged on both passes."""
    return [
        DrainedRow(evaluate_threshold(t, fresh), evaluate_threshold(t, drained))
        for t in thresholds.thresholds
        if drained.get(t.metric) is not None
    ]


def drained_comparison(
    thresholds: ThresholdSet, fresh: RunResults, facts: dict[str, Any], results_dir: Path
) -> DrainedComparison:
    if not facts.get("ran"):
        return DrainedComparison([], ExitCode.BROKEN, str(facts.get("detail") or "the drained pass did not run"), {})
    path = results_dir / str(facts.get("results_file") or DRAINED_RESULTS_FILE)
    if not path.exists():
        return DrainedComparison([], ExitCode.BROKEN, f"the drained pass's results are missing ({path.name})", {})
    drained = load_results(path)
    rows = compare_passes(thresholds, fresh, drained)
    capped = dict(drained.run.get("capped_steps") or {})
    if not rows:
        return DrainedComparison([], ExitCode.BROKEN, "the drained pass measured no judged metric", capped)
    code = max(exit_code([row.drained for row in rows]), int(facts.get("scenario_exit_code", ExitCode.PASS)))
    return DrainedComparison(rows, code, "", capped)


def _figure(result: ThresholdResult) -> str:
    if result.measured is None:
        return "not measured"
    n = f" (N={result.sample_size})" if result.sample_size else ""
    unit = "" if result.threshold.unit in ("", "ratio") else f" {result.threshold.unit}"
    return f"{result.measured:.4g}{unit}{n}"


def _levels(result: ThresholdResult) -> str:
    t = result.threshold
    return "; ".join(
        f"{name} {condition}" for name, condition in (("warning", t.warning), ("critical", t.critical)) if condition
    )


def _caps_text(caps: dict[str, Any] | None) -> str:
    if not caps:
        return "caps: not read"
    if not caps.get("enforced"):
        return f"caps: {caps.get('detail')}"
    parts = []
    if caps.get("cache_cpu_vcpus") is not None:
        parts.append(f"cache node {caps['cache_cpu_vcpus']:g} vCPU (CFS period {caps.get('cache_cpu_period_us')} µs)")
    disk = caps.get("disk") or {}
    if disk.get("read_iops"):
        parts.append(
            f"data disk {disk['read_iops']} read / {disk.get('write_iops')} write IOPS, {disk.get('read_bps')} B/s"
        )
    else:
        parts.append(f"data disk: {caps.get('storage_detail')}")
    return "caps read back from the kernel: " + ", ".join(parts)


def drained_section(
    comparison: DrainedComparison, facts: dict[str, Any]
) -> tuple[str, tuple[str, ...], list[tuple[str, ...]], str]:
    """(title, headers, rows, note) for the report's section renderers."""
    rows: list[tuple[str, ...]] = [
        (
            row.fresh.threshold.id,
            str(row.fresh.threshold.condition.statistic),
            _levels(row.fresh),
            _figure(row.fresh),
            row.fresh.status.value,
            _figure(row.drained),
            row.drained.status.value,
        )
        for row in comparison.rows
    ]
    verdict = {0: "PASS", 3: "WARN", 4: "FAIL"}.get(comparison.exit_code, "BROKEN")
    notes = [f"Drained verdict: {verdict}" + (f" ({comparison.detail})" if comparison.detail else "") + "."]
    notes.append(
        "The sign-off's verdict is the worse of the fresh and the drained one. The drained pass restarts the "
        "database, the proxy and the cache node with cpu_credits = drained (PostgreSQL's data evicted from the "
        "page cache, the volume at its baseline, the cache node at its CPU baseline) and runs vector search, the "
        "cache hit rate and pooling at the design concurrency."
    )
    if facts.get("ran"):
        notes.append(_caps_text(facts.get("caps_after") or facts.get("caps_before")) + ".")
        capped = comparison.capped_steps
        if capped:
            named = ", ".join(
                f"{step} (capped at {info['cap_s']:g} s: {info['requests']} of {info['max_requests']} requests)"
                for step, info in sorted(capped.items())
            )
            notes.append(f"CAPPED steps (ended by their time limit, figures from fewer requests): {named}.")
        else:
            notes.append(f"No step reached its cap of {facts.get('step_cap_s')} s.")
        checks = facts.get("scenario_checks") or {}
        if checks:
            notes.append(
                f"Scenario checks: {checks.get('passed', 0)} passed, {len(checks.get('failed', []))} failed, "
                f"{len(checks.get('errors', []))} errors; {facts.get('duration_s')} s with the restarts."
            )
    return DRAINED_TITLE, DRAINED_HEADERS, rows, " ".join(notes)


def drained_summary(document: dict[str, Any]) -> str:
    """The terminal's lines for report.json's `drained_pass`: fresh and drained per threshold, the verdict."""
    verdict = {0: "PASS", 3: "WARN", 4: "FAIL"}.get(int(document.get("exit_code", ExitCode.BROKEN)), "BROKEN")
    lines = [f"drained pass: {verdict}" + (f" ({document['detail']})" if document.get("detail") else "")]
    for row in document.get("rows", []):
        fresh = "not measured" if row["fresh"] is None else f"{row['fresh']:.4g}"
        drained = "not measured" if row["drained"] is None else f"{row['drained']:.4g}"
        lines.append(
            f"  {row['id']:32} {row['statistic']:>6}  fresh {fresh:>12} {row['fresh_status']:5}"
            f"  drained {drained:>12} {row['drained_status']}"
        )
    for step, info in sorted((document.get("capped_steps") or {}).items()):
        lines.append(f"  CAPPED {step}: {info['requests']} of {info['max_requests']} requests in {info['cap_s']:g} s")
    return "\n".join(lines)
