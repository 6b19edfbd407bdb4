"""Retention like RDS automated backups: 7 days of point-in-time recovery, nothing older kept.

The decisions are pure (plan_retention), so they are tested on their own; apply_retention carries them out.
A backup older than the window goes, unless
it is the newest one (a unit never ends up with no backup at all); archived WAL older than the oldest kept
backup's first segment goes too, because nothing can replay it any more. WAL segment names order by time
within a timeline, and history files (`*.history`) are always kept: they are tiny and every restore of a
later timeline needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from harness.backup.catalog import BACKUPS_PREFIX, METADATA, BackupInfo, keys_under, list_backups
from harness.config import UnitValues, shipped_unit
from harness.services.wal_archive import WAL_PREFIX, segment_of, wal_key


def retention_of(unit: UnitValues | None = None) -> timedelta:
    """How long backups are kept: unit.yaml's db.backup_retention_days (the document's 7 days)."""
    return timedelta(days=(unit or shipped_unit()).backup_retention_days)


@dataclass(frozen=True)
class RetentionPlan:
    expired_backups: list[str]
    expired_wal: list[str]


def _segment_position(segment: str) -> str:
    # Timeline (8 hex) then log and segment (16 hex): the log/segment part orders across timelines.
    return segment[8:24]


def plan_retention(
    backups: Sequence[BackupInfo], wal_segments: Sequence[str], now: datetime, retention: timedelta | None = None
) -> RetentionPlan:
    retention = retention or retention_of()
    ordered = sorted(backups, key=lambda b: b.created_at)
    keep = [b for b in ordered if now - b.created <= retention]
    if not keep and ordered:
        keep = [ordered[-1]]
    kept_ids = {b.backup_id for b in keep}
    expired = [b.backup_id for b in ordered if b.backup_id not in kept_ids]
    if not keep:
        return RetentionPlan(expired, [])
    oldest_needed = min(_segment_position(b.start_wal) for b in keep)
    old_wal = [
        s for s in wal_segments if len(s) >= 24 and not s.endswith(".history") and _segment_position(s) < oldest_needed
    ]
    return RetentionPlan(expired, sorted(old_wal))


def apply_retention(s3: Any, bucket: str, now: datetime, retention: timedelta | None = None) -> RetentionPlan:
    """Delete what the plan says from one bucket (the copy region applies its own, same rule)."""
    backups = list_backups(s3, bucket)
    wal = [segment_of(k) for k in keys_under(s3, bucket, WAL_PREFIX)]
    plan = plan_retention(backups, wal, now, retention)
    doomed = [wal_key(s) for s in plan.expired_wal]
    for backup_id in plan.expired_backups:
        # Metadata first: a half-deleted backup must stop being listed as restorable.
        doomed = (
            [f"{BACKUPS_PREFIX}{backup_id}/{METADATA}"]
            + [k for k in keys_under(s3, bucket, f"{BACKUPS_PREFIX}{backup_id}/") if not k.endswith(METADATA)]
            + doomed
        )
    for key in doomed:
        s3.delete_object(Bucket=bucket, Key=key)
    return plan
