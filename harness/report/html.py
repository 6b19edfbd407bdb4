"""report.html: one self-contained file (inline CSS, charts as data URIs, no scripts, no external URLs),
so it can be attached to a CI run or mailed and still open offline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from harness.report.figures import MetricSummary
from harness.report.text import (
    SECURITY_HEADERS,
    VERDICT_HEADERS,
    flatten_facts,
    missing_facts,
    security_rows,
    verdict_rows,
)
from harness.thresholds import EXIT_CODE_MEANINGS, Status, ThresholdResult, exit_code, verdict

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
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
tr.row-ERROR { background: #f4e8f7; }
figure { margin: 1.5rem 0; } figure img { width: 100%; max-width: 900px; border: 1px solid #eee; }
figcaption { font-size: .8rem; color: #444; max-width: 900px; }
.note { font-size: .8rem; color: #555; } code { font-size: .95em; }
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
    summaries: Sequence[MetricSummary],
    charts: Sequence[Chart],
    generated_at: str,
    threshold_sources: Sequence[str],
) -> str:
    code = exit_code(results)
    overall = verdict(results).value
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Database Unit sign-off: {escape(overall)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Database Unit sign-off report</h1>",
        f'<p><span class="badge {escape(overall)}">{escape(overall)}</span> '
        f"exit {code}: {escape(EXIT_CODE_MEANINGS[code])}. Generated {escape(generated_at)}.</p>",
    ]
    rows = verdict_rows(results)
    # The verdict's reasons first; the environment (long) follows them, before the charts.
    parts += [
        "<h2>Thresholds</h2>",
        _table(
            VERDICT_HEADERS,
            rows,
            numeric=(4, 5, 6, 7),
            row_classes=[f"row-{r.status.value}" for r in results],
        ),
    ]
    problems = [r for r in results if r.status is not Status.PASS]
    if problems:
        items = "".join(
            f"<li><b>{escape(r.status.value)}</b> <code>{escape(r.threshold.id)}</code>: {escape(r.message)}</li>"
            for r in problems
        )
        parts.append(f"<ul>{items}</ul>")
    sources = "".join(f"<li><code>{escape(r.threshold.id)}</code>: {escape(r.threshold.source)}</li>" for r in results)
    parts += [
        '<p class="note">* levels the harness sets itself; the others come from the seed document. '
        "Margin: headroom before the level fires (positive), or how far past it the run went (negative).</p>",
        '<details><summary class="note">Where each threshold comes from</summary>'
        f'<ul class="note">{sources}</ul></details>',
        "<h2>Security</h2>",
        _table(SECURITY_HEADERS, security_rows(run))
        if security_rows(run)
        else '<p class="note">Not checked in this run (the security scenario did not run).</p>',
        "<h2>Environment</h2>",
        _table(("fact", "value"), flatten_facts(run)),
    ]
    if missing_facts(run):
        parts.append(f'<p class="note">Not recorded in this run: {escape(", ".join(missing_facts(run)))}.</p>')
    parts += [
        "<h2>Charts</h2>",
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
        "<h2>Measurements</h2>",
        _table(("metric", "kind", "unit", "figures"), summary_rows),
        '<p class="note">Latency percentiles come from merged HDR histograms (3 significant figures); gauge '
        "percentiles use the nearest-rank definition. "
        f"Thresholds from: {escape(', '.join(threshold_sources))}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def section_html(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str) -> str:
    classes = ["row-FAIL" if "FIRED" in row else "" for row in rows]
    parts = [f"<h2>{escape(title)}</h2>", _table(headers, rows, row_classes=classes)]
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    return "\n".join(parts) + "\n"
