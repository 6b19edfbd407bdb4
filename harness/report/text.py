"""Plain-text renderings: the fixed-width verdict table printed at the end of a run, and report.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.checklist import ItemResult, status_counts
from harness.report.figures import MetricSummary, format_value
from harness.thresholds import (
    EXIT_CODE_MEANINGS,
    ExitCode,
    Status,
    Threshold,
    ThresholdResult,
    exit_code,
    not_emulated_note,
    verdict,
)

# The environment facts a reader looks for first, in this order; any others follow alphabetically.
PREFERRED_FACTS = (
    "harness_version",
    "backend",
    "versions",
    "sizing",
    "cgroups",
    "credits",
    "machine",
    "data_profile",
    "git_revision",
)
# A stack of containers (the compose backend) states, right after the backend, the image each service ran and
# the limits each container's kernel held; a stack of processes has neither, and is not said to lack them.
CONTAINER_FACTS = ("images", "containers")
# Facts another section of the report presents: the emulator's alarm history (the production alarms table),
# the stack's CloudWatch alarms, metrics and dashboards (dashboards, checklist), the alarm drills (checklist).
SHOWN_ELSEWHERE = ("cloudwatch_emulator", "cloudwatch", "alarm_drills")


# The run fact the security scenario writes: {"verdict", "findings": [{item, check, status, evidence}]}.
SECURITY_FACT = "security"
SECURITY_HEADERS = ("checklist item", "status", "check", "evidence")


def security_rows(run: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    findings = run.get(SECURITY_FACT, {}).get("findings", [])
    return [(f["item"], f["status"], f["check"], f["evidence"]) for f in findings]


def produced_by(run: Mapping[str, Any]) -> str:
    """ " by dbunit-harness VERSION" for a run that recorded it (results files before it did not)."""
    version = run.get("harness_version")
    return f" by dbunit-harness {version}" if version else ""


def flatten_facts(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Run facts as (dotted key, text) rows, preferred keys first."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if prefix.startswith("containers.") and isinstance(value, Mapping):
            rows.append((prefix, held_limits_text(value)))
        elif isinstance(value, Mapping) and value:
            for key in sorted(value):
                walk(f"{prefix}.{key}", value[key])
        elif isinstance(value, list | tuple):
            rows.append((prefix, ", ".join(str(v) for v in value)))
        else:
            rows.append((prefix, "yes" if value is True else "no" if value is False else str(value)))

    preferred = [k for k in PREFERRED_FACTS if k in run]
    if "backend" in preferred:
        at = preferred.index("backend") + 1
        preferred[at:at] = [k for k in CONTAINER_FACTS if k in run]
    ordered = preferred + sorted(
        k
        for k in run
        if k not in preferred and k not in SHOWN_ELSEWHERE and k != SECURITY_FACT and k not in CONTAINER_FACTS
    )
    for key in ordered:
        walk(key, run[key])
    return rows


def held_limits_text(held: Mapping[str, Any]) -> str:
    """One container's limits: what its kernel held (its cgroup files), what the engine was given, its image."""

    def limits(memory: Any, vcpus: Any) -> str:
        mib = "no memory limit" if not memory else f"{int(memory) / 2**20:g} MiB"
        return f"{mib}, {'no CPU limit' if not vcpus else f'{float(vcpus):g} vCPU'}"

    parts = [f"kernel ({held.get('cgroup', '?')}): {limits(held.get('memory_bytes'), held.get('vcpus'))}"]
    parts.append(f"engine: {limits(held.get('engine_memory_bytes'), held.get('engine_vcpus'))}")
    if held.get("image_id"):
        parts.append(f"image {str(held['image_id']).removeprefix('sha256:')[:12]}")
    return "; ".join(parts)


def missing_facts(run: Mapping[str, Any]) -> list[str]:
    return [k for k in PREFERRED_FACTS if k not in run]


def conditions(t: Threshold) -> str:
    """Both levels in one phrase. Expressions state what must hold, hence 'unless'."""
    parts = [f"{verb} unless {c}" for verb, c in (("warn", t.warning), ("fail", t.critical)) if c is not None]
    return "; ".join(parts)


def margin_text(result: ThresholdResult) -> str:
    if result.margin is None:
        return "-"
    text = format_value(result.margin, result.threshold.unit)
    if result.margin > 0:
        text = "+" + text
    pct = result.margin_pct
    return text if pct is None else f"{text} ({pct:+.0f}%)"


def verdict_rows(results: Sequence[ThresholdResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.status.value,
            r.threshold.id + (" *" if r.threshold.ours else ""),
            "-" if r.threshold.warning is None else str(r.threshold.warning),
            "-" if r.threshold.critical is None else str(r.threshold.critical),
            format_value(r.measured, r.threshold.unit),
            "-" if r.level is None else f"{r.level_name} {format_value(r.level, r.threshold.unit)}",
            margin_text(r),
            "-" if r.sample_size is None else f"{r.sample_size:,}",
            interval_text(r),
        )
        for r in results
    ]


def interval_text(result: ThresholdResult) -> str:
    if result.interval is None:
        return "-"
    low, high = (format_value(v, result.threshold.unit) for v in result.interval)
    return f"{low} .. {high}" + ("" if result.conclusive else " (not conclusive)")


# Expressions state what must hold to pass, so the columns say what happens when one does not.
VERDICT_HEADERS = (
    "STATUS",
    "THRESHOLD",
    "WARN UNLESS",
    "FAIL UNLESS",
    "MEASURED",
    "LEVEL",
    "MARGIN",
    "N",
    "95% INTERVAL",
)
CHECKLIST_HEADERS = ("STATUS", "PHASE", "GROUP", "ITEM", "EVIDENCE")


def checklist_rows(items: Sequence[ItemResult]) -> list[tuple[str, ...]]:
    return [
        (
            i.result.status.value,
            "pre" if i.item.phase == "pre" else "post",
            i.item.group.replace("_", " "),
            i.item.text,
            i.result.evidence,
        )
        for i in items
    ]


def checklist_summary(items: Sequence[ItemResult]) -> str:
    counts = status_counts(items)
    shown = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    return f"{len(items)} checklist items: {shown}"


def conclusiveness_summary(results: Sequence[ThresholdResult]) -> str:
    with_interval = [r for r in results if r.interval is not None]
    open_ = [r.threshold.id for r in with_interval if not r.conclusive]
    text = f"{len(with_interval) - len(open_)} of {len(with_interval)} judged percentiles and rates conclusive"
    return text + (f" (not conclusive: {', '.join(open_)})" if open_ else "")


def fixed_width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain-text table lines (header, dashed rule, rows), shared by the verdict table and run comparisons."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_verdict_table(results: Sequence[ThresholdResult]) -> str:
    """The verdict as fixed-width text, with a line per non-passing threshold saying why."""
    lines = fixed_width(VERDICT_HEADERS, verdict_rows(results))
    notes = [f"  {r.status.value} {r.threshold.id}: {r.message}" for r in results if r.status is not Status.PASS]
    if notes:
        lines += ["", *notes]
    if any(r.threshold.ours for r in results):
        lines += ["", "* level set by the harness, not the seed document"]
    code = exit_code(results)
    left_out = not_emulated_note(results)
    lines += [
        "",
        f"verdict: {verdict(results).value} (exit {code}: {EXIT_CODE_MEANINGS[code]})"
        + (f"; {left_out}" if left_out else ""),
    ]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_escape(str(c)) for c in row) + " |" for row in rows]
    return lines


def render_markdown(
    run: Mapping[str, Any],
    results: Sequence[ThresholdResult],
    checklist: Sequence[ItemResult],
    summaries: Sequence[MetricSummary],
    generated_at: str,
    threshold_sources: Sequence[str],
    code: int,
) -> str:
    lines = [
        "# Database Unit sign-off report",
        "",
        f"**Verdict: {VERDICT_NAMES[code]}** (exit {code}: {EXIT_CODE_MEANINGS[code]}"
        + (f"; {not_emulated_note(results)}" if not_emulated_note(results) else "")
        + f"). Generated {generated_at}{produced_by(run)}.",
        "",
        f"{checklist_summary(checklist)}; {conclusiveness_summary(results)}.",
        "",
        "## Checklist",
        "",
        *_md_table(CHECKLIST_HEADERS, checklist_rows(checklist)),
    ]
    lines += ["", "## Thresholds", "", *_md_table(VERDICT_HEADERS, verdict_rows(results)), ""]
    for r in results:
        if r.status is not Status.PASS:
            lines.append(f"- **{r.status.value}** `{r.threshold.id}`: {r.message}")
    lines += [
        "",
        "`*` marks levels the harness sets itself; the others come from the seed document "
        "(see each threshold's source in report.json).",
        "",
        "## Security",
        "",
    ]
    if security_rows(run):
        lines += _md_table(SECURITY_HEADERS, security_rows(run))
        lines += ["", f"Security verdict: {run[SECURITY_FACT].get('verdict', '?')} (`harness verify security`)."]
    else:
        lines.append("Not checked in this run (the security scenario did not run).")
    lines += ["", "## Measurements", ""]
    rows = [
        (
            s.name,
            s.kind.value,
            s.unit or "-",
            s.text(),
        )
        for s in summaries
    ]
    lines += _md_table(("metric", "kind", "unit", "figures"), rows)
    lines += ["", f"Thresholds from: {', '.join(threshold_sources)}.", "", "## Environment", ""]
    lines += _md_table(("fact", "value"), flatten_facts(run))
    if missing_facts(run):
        lines += ["", f"Not recorded in this run: {', '.join(missing_facts(run))}."]
    lines.append("")
    return "\n".join(lines)


def section_markdown(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str) -> str:
    lines = [f"## {title}", "", *_md_table(headers, rows), ""]
    if note:
        lines += [note, ""]
    return "\n".join(lines) + "\n"


VERDICT_NAMES: dict[int, str] = {
    ExitCode.PASS: "PASS",
    ExitCode.WARN: "WARN",
    ExitCode.FAIL: "FAIL",
    ExitCode.BROKEN: "ERROR",
}
