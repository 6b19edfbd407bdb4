"""What a checklist item is, what a check returns, and the statuses a release manager reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.spec import SpecFinding, UnitSpec
from harness.thresholds import ThresholdResult


class CheckStatus(StrEnum):
    PASS = "PASS"
    # Only from thresholds: a warning level was breached, nothing critical.
    WARN = "WARN"
    FAIL = "FAIL"
    # The local unit cannot behave like AWS here (no VPC, no IAM...); the evidence says why.
    NOT_EMULATED = "NOT EMULATED"
    # The check arrives with other work (alarms, backups, TLS) or did not run in this run; never a pass.
    NOT_CHECKED_YET = "NOT CHECKED YET"


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus
    # The figure, the query, the file: what a reader needs to believe the status. No secrets.
    evidence: str

    def as_json(self) -> dict[str, str]:
        return {"status": self.status.value, "evidence": self.evidence}


@dataclass(frozen=True)
class ChecklistItem:
    # "post.connectivity.rds_via_proxy": phase, the document's group, a short key.
    id: str
    phase: str
    group: str
    # The item's words in the document.
    text: str
    # The check that decides it (see harness/checklist/checks.py); None until one exists.
    check: str | None
    # The work that brings the check, while it is missing (e.g. "the alarms work").
    pending: str = ""


@dataclass(frozen=True)
class CheckContext:
    """What a check may look at. Everything here is in the results file or derived from fixtures, so a
    report rendered later from results.json decides every item the same way."""

    run: Mapping[str, Any]
    thresholds: Sequence[ThresholdResult]
    spec_findings: Sequence[SpecFinding] = field(default_factory=tuple)
    spec: UnitSpec | None = None

    def recorded(self, check_id: str) -> Mapping[str, Any] | None:
        checks = self.run.get("checks")
        if isinstance(checks, Mapping):
            found = checks.get(check_id)
            return found if isinstance(found, Mapping) else None
        return None


@dataclass(frozen=True)
class ItemResult:
    item: ChecklistItem
    result: CheckResult
