"""Decide every checklist item of a run. An item whose check is missing says NOT CHECKED YET and names
the work that brings it; an exception in a check fails its item, it never passes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.checklist.checks import CHECKS
from harness.checklist.drift import with_drift
from harness.checklist.items import CHECKLIST
from harness.checklist.model import CheckContext, CheckResult, CheckStatus, ItemResult
from harness.spec import DocumentError, SpecError, SpecFinding, UnitSpec, lint, load_unit_spec, read_document
from harness.spec.model import parse_uses
from harness.thresholds import ExitCode, ThresholdResult


def shipped_spec(spec_use: str = "") -> tuple[UnitSpec | None, list[SpecFinding]]:
    """The shipped spec with the run's choices (`FACT=VALUE,...`, run.spec_use) and its lint; an unreadable
    spec gives neither, and the spec items then say so."""
    try:
        spec = load_unit_spec().with_uses(parse_uses([p for p in spec_use.split(",") if p.strip()]))
        return spec, lint(spec, read_document(spec.document))
    except (SpecError, DocumentError):
        return None, []


def evaluate_checklist(
    run: Mapping[str, Any], thresholds: Sequence[ThresholdResult], findings: Sequence[SpecFinding] | None = None
) -> list[ItemResult]:
    spec, shipped = shipped_spec(str(run.get("spec_use") or ""))
    ctx = CheckContext(run, thresholds, shipped if findings is None else findings, spec)
    results = []
    for item in CHECKLIST:
        check = CHECKS.get(item.check) if item.check else None
        if check is None:
            result = CheckResult(
                CheckStatus.NOT_CHECKED_YET, f"no check yet: arrives with {item.pending or 'later work'}"
            )
        else:
            try:
                result = check(ctx)
            except Exception as exc:  # a broken check must show as a failure, not end the report
                result = CheckResult(CheckStatus.FAIL, f"the check {item.check} raised {type(exc).__name__}: {exc}")
        results.append(ItemResult(item, with_drift(item.id, result, run)))
    return results


def checklist_exit_code(results: Sequence[ItemResult]) -> int:
    """FAIL items fail the sign-off and WARN items warn; the others are stated, not judged."""
    statuses = {r.result.status for r in results}
    if CheckStatus.FAIL in statuses:
        return ExitCode.FAIL
    if CheckStatus.WARN in statuses:
        return ExitCode.WARN
    return ExitCode.PASS


def status_counts(results: Sequence[ItemResult]) -> dict[str, int]:
    return {s.value: sum(r.result.status is s for r in results) for s in CheckStatus}
