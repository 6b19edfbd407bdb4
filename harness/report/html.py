"""report.html: one self-contained file (inline CSS, charts as data URIs, no scripts, no external URLs),
so it can be attached to a CI run or mailed and still open offline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from harness.checklist import ItemResult
from harness.report.figures import MetricSummary
from harness.report.text import (
    CHECKLIST_HEADERS,
    SECURITY_HEADERS,
    VERDICT_HEADERS,
    VERDICT_NAMES,
    checklist_rows,
    checklist_summary,
    conclusiveness_summary,
    flatten_facts,
    missing_facts,
    produced_by,
    security_rows,
    verdict_rows,
)
from harness.thresholds import EXIT_CODE_MEANINGS, Status, ThresholdResult, not_emulated_note

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1rem auto; max-width: 1100px;
       color: #1b1b1b; padding: 0 1rem; line-height: 1.4; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: .3rem; font-weight: 700; color: #fff; }
.PASS { background: #2e7d32; } .WARN { background: #c77700; } .FAIL { background: #b3261e; }
.ERROR { background: #6a1b9a; }
tr.row-WARN td:first-child, tr.row-FAIL td:first-child, tr.row-ERROR td:first-child,
tr.row-PASS td:first-child { font-weight: 700; }
tr.row-WARN { background: #fff6e5; } tr.row-FAIL { background: #fdecea; }
tr.row-ERROR { background: #f4e8f7; } tr.row-NOT-EMULATED { background: #e0f2f1; }
figure { margin: 1.5rem 0; } figure img { width: 100%; max-width: 900px; border: 1px solid #eee; }
figcaption { font-size: .8rem; color: #444; max-width: 900px; }
.note { font-size: .8rem; color: #555; } code { font-size: .95em; }
.BROKEN { background: #6a1b9a; }
h1 { font-size: 1.4rem; margin: 0; } p.verdict { margin: .2rem 0 .3rem; }
h2#checklist { margin-top: .6rem; }
table.checklist { font-size: .72rem; table-layout: fixed; line-height: 1.15; }
table.checklist td { padding: .05rem .3rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
table.checklist th { padding: .1rem .3rem; }
table.checklist th:nth-child(1) { width: 8.2rem; } table.checklist th:nth-child(2) { width: 2.4rem; }
table.checklist th:nth-child(3) { width: 8rem; } table.checklist th:nth-child(4) { width: 16rem; }
.st { display: inline-block; width: 7.6rem; text-align: center; border-radius: .25rem; color: #fff;
      font-weight: 700; font-size: .66rem; }
.st-PASS { background: #2e7d32; } .st-WARN { background: #c77700; } .st-FAIL { background: #b3261e; }
.st-NOT-EMULATED { background: #00838f; } .st-NOT-CHECKED-YET { background: #37474f; }
@media print { table.checklist td { white-space: normal; } }
"""

if TYPE_CHECKING:
    # Only a type here; importing charts at run time would load matplotlib for every CLI command.
    from harness.report.charts import Chart


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{escape(str(c))}</td>' if j in numeric else f"<td>{escape(str(c))}</td>"
            for j, c in enumerate(row)
        )
        cls = f' class="{escape(row_classes[i])}"' if row_classes else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(
    run: Mapping[str, Any],
    results: Sequence[ThresholdResult],
    checklist: Sequence[ItemResult],
    summaries: Sequence[MetricSummary],
    charts: Sequence[Chart],
    generated_at: str,
    threshold_sources: Sequence[str],
    code: int,
) -> str:
    overall = VERDICT_NAMES[code]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Database Unit sign-off: {escape(overall)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Database Unit sign-off report</h1>",
        f'<p class="verdict"><span class="badge {escape(overall)}">{escape(overall)}</span> '
        f"exit {code}: {escape(EXIT_CODE_MEANINGS[code])}"
        f"{escape('; ' + not_emulated_note(results) if not_emulated_note(results) else '')}. "
        f"Generated {escape(generated_at)}{escape(produced_by(run))}.<br>"
        f'<span class="note">{escape(checklist_summary(checklist))}; '
        f"{escape(conclusiveness_summary(results))}.</span></p>",
        # The document's own sign-off first: what was checked, how, and what it showed.
        '<h2 id="checklist">Checklist</h2>',
        _checklist_table(checklist),
        '<p class="note">The design document\'s pre- and post-deployment checklists. NOT EMULATED: the local '
        "unit cannot behave like AWS there (the evidence says why). NOT CHECKED YET: the check arrives with "
        "other work or did not run; never a pass. Full evidence: report.md, report.json.</p>",
    ]
    rows = verdict_rows(results)
    parts += [
        '<h2 id="thresholds">Thresholds</h2>',
        _table(
            VERDICT_HEADERS,
            rows,
            numeric=(4, 5, 6, 7, 8),
            row_classes=[f"row-{r.status.value.replace(' ', '-')}" for r in results],
        ),
    ]
    problems = [r for r in results if r.status is not Status.PASS or r.conclusive is False]
    if problems:
        items = "".join(
            f"<li><b>{escape(r.status.value)}</b> <code>{escape(r.threshold.id)}</code>: {escape(r.message)}</li>"
            for r in problems
        )
        parts.append(f"<ul>{items}</ul>")
    sources = "".join(f"<li><code>{escape(r.threshold.id)}</code>: {escape(r.threshold.source)}</li>" for r in results)
    parts += [
        '<p class="note">* levels the harness sets itself; the others come from the seed document. '
        "Margin: headroom before the level fires (positive), or how far past it the run went (negative). "
        "95% interval: order-statistic bounds for percentiles (from the HDR histogram), Wilson for rates; "
        "not conclusive when a level lies inside it.</p>",
        '<details><summary class="note">Where each threshold comes from</summary>'
        f'<ul class="note">{sources}</ul></details>',
        '<h2 id="security">Security</h2>',
        _table(SECURITY_HEADERS, security_rows(run))
        if security_rows(run)
        else '<p class="note">Not checked in this run (the security scenario did not run).</p>',
        '<h2 id="charts">Charts</h2>',
    ]
    if not charts:
        parts.append('<p class="note">No chartable measurements in this run.</p>')
    for chart in charts:
        parts.append(
            f'<figure id="chart-{escape(chart.chart_id)}">'
            f'<img src="{chart.data_uri()}" alt="{escape(chart.title)}">'
            f"<figcaption>{escape(chart.caption)}</figcaption></figure>"
        )
    summary_rows = [
        (
            s.name,
            s.kind.value,
            s.unit or "-",
            s.text(),
        )
        for s in summaries
    ]
    parts += [
        '<h2 id="measurements">Measurements</h2>',
        _table(("metric", "kind", "unit", "figures"), summary_rows),
        '<p class="note">Latency percentiles come from merged HDR histograms (3 significant figures); gauge '
        "percentiles use the nearest-rank definition. "
        f"Thresholds from: {escape(', '.join(threshold_sources))}.</p>",
        '<h2 id="environment">Environment</h2>',
        f'<details><summary class="note">Backend, versions, sizing, cgroups, machine, data profile '
        f"({len(flatten_facts(run))} facts)</summary>",
        _table(("fact", "value"), flatten_facts(run)),
        "</details>",
    ]
    if missing_facts(run):
        parts.append(f'<p class="note">Not recorded in this run: {escape(", ".join(missing_facts(run)))}.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def section_html(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str) -> str:
    classes = ["row-FAIL" if "FIRED" in row else "" for row in rows]
    parts = [f"<h2>{escape(title)}</h2>", _table(headers, rows, row_classes=classes)]
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    return "\n".join(parts) + "\n"


def status_class(status: str) -> str:
    return "st-" + status.replace(" ", "-")


def _checklist_table(items: Sequence[ItemResult]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in CHECKLIST_HEADERS)
    body = []
    for status, phase, group, text, evidence in checklist_rows(items):
        body.append(
            f'<tr><td><span class="st {status_class(status)}">{escape(status)}</span></td>'
            f"<td>{escape(phase)}</td><td>{escape(group)}</td><td>{escape(text)}</td>"
            f'<td class="ev" title="{escape(evidence)}">{escape(evidence)}</td></tr>'
        )
    return f'<table class="checklist"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
