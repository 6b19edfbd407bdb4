"""The checklist's backup items, probed on the running unit: the WAL archive (what RDS's automated backups
are made of), the base backups in the catalog, retention, and a manual snapshot of the data being signed
off. Each reads what exists; none makes a backup, so a sign-off never spends minutes copying the database.

On a deployed unit backups are RDS's own: these items then say NOT EMULATED and name what `harness spec
drift` reads instead. On a stack whose facts say it keeps no backups (compose), they say NOT EMULATED with
that reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from harness.backup.catalog import BackupError, BackupInfo, list_backups
from harness.backup.retention import plan_retention, retention_of
from harness.backup.snapshot import wait_archived
from harness.checklist.model import CheckResult, CheckStatus
from harness.endpoints import StackEndpoints
from harness.services.aws import backup_bucket
from harness.services.wal_archive import WAL_PREFIX, segment_of, wal_key
from harness.spec import SpecError, load_unit_spec

# A segment switched by the probe reaches the archive in about a second here; the server's own
# archive_timeout (60 s) is the bound a healthy archiver always meets.
ARCHIVE_PROBE_S = 90.0
STATEMENT_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 5


def _rds_owns_backups(stack: StackEndpoints, what: str) -> CheckResult | None:
    if stack.backend == "embedded":
        return None
    # A stack the harness runs without backups (compose) says why in its facts; a deployment's are RDS's.
    local = stack.facts.get("not_emulated", {}).get("backups")
    if local:
        return CheckResult(CheckStatus.NOT_EMULATED, f"backend {stack.backend}: {what}: {local}")
    return CheckResult(
        CheckStatus.NOT_EMULATED,
        f"backend {stack.backend}: {what} are RDS's own; `harness spec drift` reads BackupRetentionPeriod and "
        "PreferredBackupWindow (describe-db-instances) and describe-db-snapshots lists the snapshots",
    )


def _catalog(stack: StackEndpoints) -> tuple[str, list[BackupInfo]]:
    bucket = backup_bucket(stack.aws.region)
    return bucket, list_backups(stack.aws.client("s3"), bucket)


def _objects(s3: Any, bucket: str, prefix: str) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[str(item["Key"])] = item["LastModified"]
    return found


def _age(info: BackupInfo, now: datetime) -> str:
    hours = (now - info.created).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _settings(conn: Any) -> dict[str, str]:
    rows = conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_timeout', 'archive_command')"
    ).fetchall()
    return {str(name): str(value) for name, value in rows}


def automated_backups(stack: StackEndpoints) -> CheckResult:
    """Running means: archiving is on, a segment switched now reaches the archive encrypted, and a base
    backup exists to replay it onto."""
    if (owned := _rds_owns_backups(stack, "automated backups")) is not None:
        return owned
    with stack.direct.connect(autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        settings = _settings(conn)
        if settings.get("archive_mode") != "on":
            return CheckResult(CheckStatus.FAIL, f"archive_mode is {settings.get('archive_mode')}: no WAL is archived")
        (segment,) = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
        began = time.perf_counter()
        try:
            wait_archived(conn, segment, timeout_s=ARCHIVE_PROBE_S)
        except BackupError as exc:
            return CheckResult(CheckStatus.FAIL, str(exc))
        waited = time.perf_counter() - began
        last, archived, failed = conn.execute(
            "SELECT last_archived_wal, archived_count, failed_count FROM pg_stat_archiver"
        ).fetchone()
    bucket, backups = _catalog(stack)
    head = stack.aws.client("s3").head_object(Bucket=bucket, Key=wal_key(last))
    encryption = head.get("ServerSideEncryption")
    evidence = (
        f"pg_switch_wal(): segment {last} in s3://{bucket}/{wal_key(last)} after {waited:.1f} s, "
        f"encrypted {encryption or 'NOT'}; pg_stat_archiver archived {archived}, failed {failed} since its reset"
    )
    if encryption != "aws:kms":
        return CheckResult(CheckStatus.FAIL, f"{evidence}: archived WAL must be encrypted with the unit's KMS key")
    if not backups:
        return CheckResult(
            CheckStatus.FAIL,
            f"{evidence}; no base backup in s3://{bucket} to replay it onto: every fresh seed makes one "
            "(unless `harness seed --no-backup`), `harness backup create` on demand",
        )
    newest = backups[-1]
    return CheckResult(
        CheckStatus.PASS,
        f"{evidence}; {len(backups)} base backup(s), newest {newest.backup_id} ({newest.kind}, "
        f"{_age(newest, datetime.now(UTC))} old, {newest.size_bytes / 1e6:.1f} MB)",
    )


def backup_schedule(stack: StackEndpoints) -> CheckResult:
    """RDS's schedule is a daily snapshot in a backup window plus logs uploaded every 5 minutes. Locally
    the logs are continuous and base backups come with each fresh seed: what stands in is stated."""
    if (owned := _rds_owns_backups(stack, "backup schedules")) is not None:
        return owned
    with stack.direct.connect(autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        settings = _settings(conn)
    archiving = settings.get("archive_mode") == "on" and "wal_archive" in settings.get("archive_command", "")
    _, backups = _catalog(stack)
    kinds = sorted({b.kind for b in backups})
    what = (
        f"archive_mode {settings.get('archive_mode')}, archive_timeout {settings.get('archive_timeout')} s "
        f"(RDS uploads logs every 5 min); {len(backups)} base backup(s) ({', '.join(kinds) or 'none'})"
    )
    if not archiving or not backups:
        return CheckResult(CheckStatus.FAIL, f"{what}: the unit has no working backup schedule")
    return CheckResult(
        CheckStatus.NOT_EMULATED,
        f"{what}; RDS's daily snapshot in preferred_backup_window has no local scheduler: base backups are made "
        "at each fresh seed and by `harness backup create`",
    )


def retention(stack: StackEndpoints) -> CheckResult:
    """Set means: the archive keeps the unit's retention and nothing the rule would delete is still there."""
    if (owned := _rds_owns_backups(stack, "retention policies")) is not None:
        return owned
    try:
        documented = load_unit_spec().value("db.backup_retention_days")
    except SpecError as exc:
        return CheckResult(CheckStatus.FAIL, f"fixtures/unit.yaml unreadable: {exc}")
    bucket, backups = _catalog(stack)
    now = datetime.now(UTC)
    wal = _objects(stack.aws.client("s3"), bucket, WAL_PREFIX)
    # What `harness backup prune` applies: unit.yaml's retention, read once for the process.
    kept = retention_of()
    plan = plan_retention(backups, [segment_of(key) for key in wal], now, kept)
    # Segments older than the oldest backup cannot be replayed, and prune removes them; only age breaks the
    # policy, as on RDS, where nothing older than the retention period is kept.
    old_wal = [key for key, modified in wal.items() if now - modified > kept]
    days = kept.days
    evidence = (
        f"retention {days} days (unit.yaml db.backup_retention_days = {documented}); s3://{bucket} holds "
        f"{len(backups)} backup(s) and {len(wal)} WAL object(s); older than {days} days: "
        f"{len(plan.expired_backups)} backup(s), {len(old_wal)} segment(s); {len(plan.expired_wal)} segment(s) "
        "precede the oldest backup"
    )
    if documented is None or int(documented) != days:
        return CheckResult(CheckStatus.FAIL, f"{evidence}: the harness keeps {days} days, the document {documented}")
    if plan.expired_backups or old_wal:
        return CheckResult(
            CheckStatus.FAIL, f"{evidence}: retention was not applied (`harness backup prune` applies it)"
        )
    return CheckResult(CheckStatus.PASS, evidence)


def manual_snapshot(stack: StackEndpoints) -> CheckResult:
    """Tested means a manual snapshot of the data being signed off was made and stored with its checksums."""
    if (owned := _rds_owns_backups(stack, "manual snapshots")) is not None:
        return owned
    with stack.direct.connect(autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        exists = conn.execute("SELECT to_regclass('app.seed_state') IS NOT NULL").fetchone()[0]
        row = conn.execute("SELECT dataset_key FROM app.seed_state LIMIT 1").fetchone() if exists else None
    dataset = str(row[0]) if row else ""
    bucket, backups = _catalog(stack)
    manual = [b for b in backups if b.kind == "manual" and dataset and b.dataset_key == dataset]
    if not manual:
        return CheckResult(
            CheckStatus.NOT_CHECKED_YET,
            f"no manual snapshot of the loaded dataset in s3://{bucket} ({len(backups)} backup(s) of other kinds "
            "or data): `harness backup create` makes one",
        )
    newest = manual[-1]
    copied = ", ".join(newest.copied_to) or "no other region"
    return CheckResult(
        CheckStatus.PASS,
        f"manual snapshot {newest.backup_id} of this dataset, {_age(newest, datetime.now(UTC))} old, "
        f"{newest.size_bytes / 1e6:.1f} MB, {len(newest.checksums)} tables with row counts and checksums, "
        f"copied to {copied}",
    )
