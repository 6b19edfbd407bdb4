"""Render a run into a report directory: report.json, report.md, report.html, junit.xml, plus a copy of
the results file so the directory alone is enough for `harness report compare`."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from harness.checklist import ItemResult, checklist_exit_code, evaluate_checklist, status_counts
from harness.measure.results import load_results
from harness.monitoring.verdicts import production_alarm_verdicts
from harness.report.alarms import ALARM_HEADERS, ALARMS_NOTE, alarm_rows
from harness.report.compare import RESULTS_FILE_NAME
from harness.report.drained import DRAINED_RESULTS_FILE, drained_comparison, drained_section
from harness.report.figures import summarize
from harness.report.html import render_html, section_html
from harness.report.junit import write_junit
from harness.report.text import VERDICT_NAMES, render_markdown, section_markdown
from harness.thresholds import EXIT_CODE_MEANINGS, ThresholdResult, ThresholdSet, evaluate, exit_code

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ReportOutcome:
    out_dir: Path
    evaluation: list[ThresholdResult]
    # Thresholds and checklist together: the worst of the two.
    exit_code: int
    files: dict[str, Path]
    checklist: list[ItemResult]


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
        "interval_95": None if r.interval is None else list(r.interval),
        "conclusive": r.conclusive,
        "message": r.message,
    }


def _item_json(i: ItemResult) -> dict[str, Any]:
    return {
        "id": i.item.id,
        "phase": i.item.phase,
        "group": i.item.group,
        "text": i.item.text,
        "check": i.item.check,
        **i.result.as_json(),
    }


DASHBOARDS_NOTE = (
    "The document's four dashboards (harness/monitoring/dashboards.py), each widget drawn from the datapoints its "
    "own metric, dimensions, statistic and period gave on the stack's CloudWatch during the run; dashed lines are "
    "the alarm levels the dashboard carries."
)


def render_report(results_path: Path, out_dir: Path, thresholds: ThresholdSet) -> ReportOutcome:
    """Evaluate `thresholds` against the results and write every report file into `out_dir`."""
    # matplotlib is slow to import: only commands that draw should pay for it.
    from harness.report.charts import build_charts, fresh_drained_chart
    from harness.report.dashboards import DASHBOARD_HEADERS, dashboard_rows, dashboard_widgets, dashboards_html

    results = load_results(results_path)
    evaluation = evaluate(thresholds, results)
    checklist = evaluate_checklist(results.run, evaluation)
    code = max(exit_code(evaluation), checklist_exit_code(checklist))
    # `harness signoff --drained`: the drained pass's results beside these, judged by the same thresholds.
    drained_facts = results.run.get("drained_pass")
    drained = None
    if isinstance(drained_facts, dict):
        drained = drained_comparison(thresholds, results, drained_facts, results_path.parent)
        code = max(code, drained.exit_code)
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in ("report.json", "report.md", "report.html", "junit.xml")}
    files["results"] = out_dir / RESULTS_FILE_NAME
    if files["results"].resolve() != results_path.resolve():
        shutil.copyfile(results_path, files["results"])
        if isinstance(drained_facts, dict) and (results_path.parent / DRAINED_RESULTS_FILE).exists():
            shutil.copyfile(results_path.parent / DRAINED_RESULTS_FILE, out_dir / DRAINED_RESULTS_FILE)

    summaries = summarize(results)
    alarms = production_alarm_verdicts(thresholds, results)
    document = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": generated_at,
        "verdict": VERDICT_NAMES[code],
        "exit_code": code,
        "exit_meaning": EXIT_CODE_MEANINGS[code],
        "results_file": RESULTS_FILE_NAME,
        "threshold_sources": list(thresholds.sources),
        "run": results.run,
        "checklist": [_item_json(i) for i in checklist],
        "checklist_counts": status_counts(checklist),
        "thresholds": [_result_json(r) for r in evaluation],
        "production_alarms": [v.as_json() for v in alarms],
        "figures": {s.name: {"kind": s.kind.value, "unit": s.unit, "values": s.values} for s in summaries},
    }
    if drained is not None and isinstance(drained_facts, dict):
        document["drained_pass"] = drained.as_json(drained_facts)
    files["report.json"].write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    charts = build_charts(results, evaluation)
    widgets = dashboard_widgets(results.run)
    sections: list[tuple[str, tuple[str, ...], list[tuple[str, ...]], str]] = [
        ("Would the production alarms have fired?", ALARM_HEADERS, alarm_rows(alarms), ALARMS_NOTE),
        ("CloudWatch dashboards", DASHBOARD_HEADERS, dashboard_rows(widgets), DASHBOARDS_NOTE),
    ]
    drained_chart = None
    if drained is not None and isinstance(drained_facts, dict):
        # First among the extra sections: beside the thresholds it qualifies.
        sections.insert(0, drained_section(drained, drained_facts))
        drained_chart = fresh_drained_chart(drained.chart_rows())
    markdown = render_markdown(results.run, evaluation, checklist, summaries, generated_at, thresholds.sources, code)
    files["report.md"].write_text(markdown + "".join(section_markdown(*section) for section in sections))
    page = render_html(results.run, evaluation, checklist, summaries, charts, generated_at, thresholds.sources, code)
    # After the thresholds, before the charts: the alarms are the thresholds as production would judge them.
    extra = "".join(section_html(*section) for section in sections)
    if drained_chart is not None:
        chart_html = (
            f'<figure><img src="{drained_chart.data_uri()}" alt="{escape(drained_chart.title)}">'
            f"<figcaption>{escape(drained_chart.caption)}</figcaption></figure>\n"
        )
        extra = extra.replace("<h2>Would the production alarms", chart_html + "<h2>Would the production alarms", 1)
    extra += dashboards_html(widgets)
    files["report.html"].write_text(page.replace('<h2 id="charts">', extra + '<h2 id="charts">', 1))
    write_junit(evaluation, files["junit.xml"], generated_at)
    return ReportOutcome(out_dir, evaluation, code, files, checklist)
