"""Render a run into a report directory: report.json, report.md, report.html, junit.xml, plus a copy of
the results file so the directory alone is enough for `harness report compare`."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.measure.results import load_results
from harness.monitoring.verdicts import production_alarm_verdicts
from harness.report.alarms import ALARM_HEADERS, ALARMS_NOTE, DASHBOARD_HEADERS, alarm_rows, dashboard_rows
from harness.report.compare import RESULTS_FILE_NAME
from harness.report.figures import summarize
from harness.report.html import render_html, section_html
from harness.report.junit import write_junit
from harness.report.text import render_markdown, section_markdown
from harness.thresholds import EXIT_CODE_MEANINGS, ThresholdResult, ThresholdSet, evaluate, exit_code, verdict

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ReportOutcome:
    out_dir: Path
    evaluation: list[ThresholdResult]
    exit_code: int
    files: dict[str, Path]


def _result_json(r: ThresholdResult) -> dict[str, Any]:
    t = r.threshold
    return {
        "id": t.id,
        "metric": t.metric,
        "statistic": str(t.condition.statistic),
        "warning": None if t.warning is None else str(t.warning),
        "critical": None if t.critical is None else str(t.critical),
        "warning_level": t.level("warning"),
        "critical_level": t.level("critical"),
        "unit": t.unit,
        "source": t.source,
        "ours": t.ours,
        "defined_at": t.origin,
        "status": r.status.value,
        "measured": r.measured,
        "level": r.level,
        "level_name": r.level_name,
        "margin": r.margin,
        "margin_pct": r.margin_pct,
        "sample_size": r.sample_size,
        "message": r.message,
    }


def render_report(results_path: Path, out_dir: Path, thresholds: ThresholdSet) -> ReportOutcome:
    """Evaluate `thresholds` against the results and write every report file into `out_dir`."""
    # matplotlib takes about a second to import: only commands that draw should pay for it.
    from harness.report.charts import build_charts

    results = load_results(results_path)
    evaluation = evaluate(thresholds, results)
    code = exit_code(evaluation)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in ("report.json", "report.md", "report.html", "junit.xml")}
    files["results"] = out_dir / RESULTS_FILE_NAME
    if files["results"].resolve() != results_path.resolve():
        shutil.copyfile(results_path, files["results"])

    summaries = summarize(results)
    alarms = production_alarm_verdicts(thresholds, results)
    document = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": generated_at,
        "verdict": verdict(evaluation).value,
        "exit_code": code,
        "exit_meaning": EXIT_CODE_MEANINGS[code],
        "results_file": RESULTS_FILE_NAME,
        "threshold_sources": list(thresholds.sources),
        "run": results.run,
        "thresholds": [_result_json(r) for r in evaluation],
        "production_alarms": [v.as_json() for v in alarms],
        "figures": {s.name: {"kind": s.kind.value, "unit": s.unit, "values": s.values} for s in summaries},
    }
    files["report.json"].write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    charts = build_charts(results, evaluation)
    sections: list[tuple[str, tuple[str, ...], list[tuple[str, ...]], str]] = [
        ("Would the production alarms have fired?", ALARM_HEADERS, alarm_rows(alarms), ALARMS_NOTE),
        ("CloudWatch dashboards", DASHBOARD_HEADERS, dashboard_rows([c.chart_id for c in charts]), ""),
    ]
    markdown = render_markdown(results.run, evaluation, summaries, generated_at, thresholds.sources)
    files["report.md"].write_text(markdown + "".join(section_markdown(*section) for section in sections))
    page = render_html(results.run, evaluation, summaries, charts, generated_at, thresholds.sources)
    extra = "".join(section_html(*section) for section in sections)
    files["report.html"].write_text(page.replace("</body></html>", extra + "</body></html>", 1))
    write_junit(evaluation, files["junit.xml"], generated_at)
    return ReportOutcome(out_dir, evaluation, code, files)
