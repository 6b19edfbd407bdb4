"""A deployment's drift result decides the checklist items whose settings it reads.

`harness spec drift --results FILE` (and `harness signoff` on the external backend) records the rows of the
read-only drift check in the run (run.spec_drift). Where a run holds them, each item below is decided by
its rows as well as by its own check: a DRIFT row fails it, a setting the account did not answer leaves it
NOT CHECKED YET (never PASS), and all rows matching pass an item the local unit could not show. Without a
drift result the item keeps its own check's status (NOT EMULATED or NOT CHECKED YET, with why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.checklist.model import CheckResult, CheckStatus
from harness.spec.drift import RUN_KEY

Row = Mapping[str, Any]


def _settings(*names: str) -> Callable[[Row], bool]:
    return lambda row: row.get("setting") in names


# Checklist item id -> what its rows are, and which rows they are.
DRIFT_ITEMS: dict[str, tuple[str, Callable[[Row], bool]]] = {
    "pre.infrastructure_validation.terraform_plan": (
        "instance class, storage, cache node, Lambda memory and timeouts against unit.yaml",
        _settings(
            "DBInstanceClass",
            "AllocatedStorage",
            "StorageType",
            "MultiAZ",
            "CacheNodeType",
            "NumCacheNodes",
            "MemorySize",
            "Timeout",
        ),
    ),
    "pre.backup_validation.retention": ("backup retention against unit.yaml", _settings("BackupRetentionPeriod")),
    "post.security_tests.encryption_at_rest": (
        "storage encryption against unit.yaml",
        _settings("StorageEncrypted", "AtRestEncryptionEnabled"),
    ),
    "post.security_tests.encryption_in_transit": (
        "TLS settings against unit.yaml",
        _settings("RequireTLS", "TransitEncryptionEnabled"),
    ),
    "post.monitoring_tests.alarms": (
        "alarms at the signed-off levels",
        lambda row: row.get("resource") == "cloudwatch alarm",
    ),
}


# The drift reads these items' settings, not all they ask: the alarms exist at their levels, but only the
# alarm drills test them. A drift result can fail such an item or hold it back, never pass it alone.
HALF_DECIDED = frozenset({"post.monitoring_tests.alarms"})


def drift_rows(run: Mapping[str, Any]) -> list[Row] | None:
    record = run.get(RUN_KEY)
    rows = record.get("rows") if isinstance(record, Mapping) else None
    if not isinstance(rows, Sequence):
        return None
    return [row for row in rows if isinstance(row, Mapping)]


def _row_text(row: Row) -> str:
    return f"{row.get('resource')} {row.get('setting')}: expected {row.get('expected')}, deployed {row.get('actual')}"


def with_drift(item_id: str, result: CheckResult, run: Mapping[str, Any]) -> CheckResult:
    """The item's result, decided with the run's drift rows when it has any for this item."""
    rows = drift_rows(run)
    if rows is None or item_id not in DRIFT_ITEMS:
        return result
    what, wanted = DRIFT_ITEMS[item_id]
    mine = [row for row in rows if wanted(row)]
    if not mine:
        return result
    drifted = [row for row in mine if row.get("status") == "DRIFT"]
    unread = [row for row in mine if row.get("status") not in ("MATCH", "DRIFT")]
    matched = len(mine) - len(drifted) - len(unread)
    summary = f"deployment drift ({what}): {matched} of {len(mine)} settings match"
    details = [f"DRIFT {_row_text(r)}" for r in drifted] + [f"NOT READ {_row_text(r)}" for r in unread]
    evidence = "; ".join([summary, *details, f"locally: {result.evidence}"])
    if drifted or result.status is CheckStatus.FAIL:
        return CheckResult(CheckStatus.FAIL, evidence)
    if unread:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, evidence)
    if item_id in HALF_DECIDED and result.status is not CheckStatus.PASS:
        return CheckResult(result.status, evidence)
    if result.status is CheckStatus.WARN:
        return CheckResult(CheckStatus.WARN, evidence)
    return CheckResult(CheckStatus.PASS, evidence)
