"""Drill: database failure, both ways the document's emergency procedure meets it.

1. Crash: the postmaster is SIGKILLed under a writer going through the proxy, and the instance is
   restarted on its own storage (what RDS does for a crashed instance): crash recovery replays the WAL,
   so no acknowledged write may be lost. Measured: time to the first successful write, failed requests.
2. Instance lost: the postmaster is SIGKILLed again and its storage treated as gone. The document's
   recovery steps follow: verify a backup is available, restore from the latest (a new instance, every
   archived WAL segment replayed), update the connection strings (the proxy is pointed at the new
   instance), validate it, resume traffic. Measured: the end-to-end RTO (kill to the first write
   acknowledged by the new instance) and the RPO (acknowledged writes that were not yet archived).
   Afterwards the proxy is pointed back, the original instance restarted and the new one dropped, also
   when the drill fails half-way. Only where the harness keeps backups (the embedded stack): elsewhere the
   second half is NOT EMULATED, and the result says why.
"""

from __future__ import annotations

import time
from typing import Any

from harness.backends.base import Backend
from harness.backup.catalog import BackupError, list_backups
from harness.backup.restore import RestoreSpec, drop_restore, restore
from harness.backup.snapshot import BackupTarget, create_backup, wait_archived
from harness.backup.unit import backup_target
from harness.backup.validate import validate
from harness.config import Settings
from harness.drills.result import DrillResult
from harness.drills.writes import WriteLoad, prepare_table, stored_ids
from harness.endpoints import StackEndpoints
from harness.services.pgbouncer import retarget
from harness.services.pgbouncer_admin import reload_and_reconnect
from harness.services.wal_archive import ARCHIVE_TIMEOUT

WARM_S = 1.0
RECOVERY_TIMEOUT_S = 120.0


def crash(backend: Backend, stack: StackEndpoints, result: DrillResult, report: Any) -> None:
    with WriteLoad(stack.proxy, max_s=RECOVERY_TIMEOUT_S + 30) as load:
        time.sleep(WARM_S)
        killed = time.monotonic()
        backend.kill("postgres", report)
        # A write acknowledged while the kill was still on its way (the engine takes a moment to deliver it to a
        # container) is not a recovery: count from the moment the postmaster is gone.
        gone = time.monotonic()
        backend.up(report)
        back = load.wait_for_success_after(gone, RECOVERY_TIMEOUT_S)
        time.sleep(0.5)
    stored = stored_ids(stack.direct)
    lost = [n for n in load.acknowledged if n not in stored]
    result.figures["crash_recovery_s"] = round(back - killed, 2) if back else None
    result.figures["crash_failed_requests"] = load.failures_between(killed, back or time.monotonic())
    result.figures["crash_acknowledged_writes"] = len(load.acknowledged)
    result.figures["crash_acknowledged_writes_lost"] = len(lost)
    result.check(
        "writes resume after a crash",
        back is not None,
        f"first write {result.figures['crash_recovery_s']} s after the kill",
    )
    result.check("no acknowledged write lost in a crash", not lost, f"{len(lost)} of {len(load.acknowledged)} lost")


def instance_lost(
    backend: Backend,
    stack: StackEndpoints,
    target: BackupTarget,
    spec: RestoreSpec,
    proxy_conf: Any,
    result: DrillResult,
    report: Any,
) -> None:
    backups = list_backups(target.s3(), target.bucket)
    if not backups:
        backups = [create_backup(target, "automated", report)]
    result.figures["latest_backup"] = backups[-1].backup_id
    # The drill's table must be in the archive before the instance is lost, as any table older than a minute is.
    with stack.direct.connect(autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        wait_archived(conn, segment)
    restored = None
    original_port = stack.direct.port
    switched = False
    try:
        with WriteLoad(stack.proxy, max_s=RECOVERY_TIMEOUT_S + 60) as load:
            time.sleep(WARM_S)
            lost_at = time.monotonic()
            acked_before = list(load.acknowledged)
            backend.kill("postgres", report)
            restored = restore(target, spec, report=report)
            retarget(proxy_conf, restored.endpoint.host, restored.endpoint.port)
            reload_and_reconnect(stack)
            switched = True
            switched_at = time.monotonic()
            checks = validate(restored.endpoint, restored.backup, exact=False)
            validated_at = time.monotonic()
            back = load.wait_for_success_after(switched_at, RECOVERY_TIMEOUT_S)
            time.sleep(0.5)
        present = stored_ids(restored.endpoint)
        lost = [n for n in acked_before if n not in present]
        result.figures["restore_rto_s"] = round(back - lost_at, 2) if back else None
        result.figures["restore_s"] = round(switched_at - lost_at, 2)
        result.figures["validate_s"] = round(validated_at - switched_at, 2)
        result.figures["restore_failed_requests"] = load.failures_between(lost_at, back or time.monotonic())
        result.figures["restore_acknowledged_writes_lost"] = len(lost)
        result.figures["restore_acknowledged_before_loss"] = len(acked_before)
        result.check("restored instance validated", checks.passed, "; ".join(line for line in checks.lines()))
        result.check(
            "traffic resumed on the new instance", back is not None, f"RTO {result.figures['restore_rto_s']} s"
        )
        result.notes.append(
            f"RPO of a lost instance: writes not yet archived are gone ({len(lost)} here); the archive switches "
            f"segments every {ARCHIVE_TIMEOUT} when quiet (RDS: every 5 minutes)"
        )
    finally:
        if switched or restored is not None:
            retarget(proxy_conf, stack.direct.host, original_port)
        backend.up(report)
        if switched:
            reload_and_reconnect(stack)
        if restored is not None:
            drop_restore(restored.directory)


def restore_target(settings: Settings, stack: StackEndpoints) -> tuple[BackupTarget | None, str]:
    """The backups a lost instance is restored from, or None and why restoring is NOT EMULATED here."""
    try:
        return backup_target(settings, stack), ""
    except BackupError as exc:
        return None, (
            f"{str(exc).removeprefix('NOT EMULATED ')}; without its WAL archive and base backups there is "
            "nothing to restore a lost instance from (and the drill re-points the embedded stack's own PgBouncer "
            "at the restored instance)"
        )


def run(
    backend: Backend,
    stack: StackEndpoints,
    target: BackupTarget | None,
    spec: RestoreSpec,
    proxy_conf: Any,
    report: Any = print,
    restore_not_emulated: str = "",
) -> DrillResult:
    """Both halves; with no `target`, the crash only and `restore_not_emulated` as the reason in the notes."""
    result = DrillResult("database")
    prepare_table(stack.direct)
    crash(backend, stack, result, report)
    if target is None:
        result.notes.append(f"a lost instance restored from backup: NOT EMULATED: {restore_not_emulated}")
        return result
    prepare_table(stack.direct)
    instance_lost(backend, stack, target, spec, proxy_conf, result, report)
    return result
