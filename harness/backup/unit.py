"""The unit's backup configuration from the harness's settings and running stack: one place that knows
which backends keep backups here and where a restore may live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.backup.catalog import BackupError, BackupInfo
from harness.backup.restore import RestoreSpec
from harness.backup.snapshot import BackupTarget, create_backup
from harness.config import Settings
from harness.endpoints import StackEndpoints
from harness.services.osuser import server_user
from harness.sizing import unit_sizing

WORK_DIR = "backup-work"


def backup_target(settings: Settings, stack: StackEndpoints, queries: Any = None) -> BackupTarget:
    local = stack.facts.get("not_emulated", {}).get("backups")
    if stack.backend != "embedded" and local:
        raise BackupError(f"NOT EMULATED on backend {stack.backend}: {local}")
    if stack.backend != "embedded":
        raise BackupError(
            f"NOT EMULATED on backend {stack.backend}: the harness archives WAL and makes base backups only for "
            "the embedded stack it runs; a real deployment's backups are RDS's own (aws rds describe-db-snapshots)"
        )
    return BackupTarget(
        db=stack.direct,
        aws=stack.aws,
        copy_region=settings.backup_copy_region,
        work_dir=settings.state_dir / WORK_DIR,
        queries=queries,
    )


def restore_spec(settings: Settings, stack: StackEndpoints) -> RestoreSpec:
    return RestoreSpec(
        state_dir=settings.state_dir,
        master_user=stack.direct.user,
        master_password=stack.direct.password,
        sizing=unit_sizing(
            settings.db_instance_class, settings.cache_node_type, settings.unit.lambda_memory_mb
        ).postgres,
        user=server_user(settings.postgres_os_user),
        cgroups=settings.cgroups != "off",
        port=settings.restore_port,
        timeout_s=settings.startup_timeout_s,
    )


def seed_queries(settings: Settings, stack: StackEndpoints) -> Any:
    """The seed's held-out query vectors, or None when the unit is not seeded (or its dataset is gone)."""
    from harness.data.app_role import data_root
    from harness.data.datasets import load_current_ground_truth
    from harness.data.loading import SeedError

    try:
        return load_current_ground_truth(stack.direct, data_root(settings.state_dir)).queries
    except SeedError:
        return None


def after_seed(settings: Settings, stack: StackEndpoints, report: Callable[[str], None]) -> BackupInfo | None:
    """What a fresh load leaves behind besides its data, whichever path loaded it (`harness seed`, the
    sign-off, the scenarios' fixture), so each leaves the same unit: the automated base backup RDS takes when
    an instance is created, which the checklist's backup items look for. None on a backend whose backups are
    RDS's own. A failed backup raises BackupError; the data stays loaded."""
    if stack.backend != "embedded":
        return None
    report("automated base backup of the fresh seed (RDS takes one when it creates an instance)")
    try:
        return create_backup(backup_target(settings, stack, seed_queries(settings, stack)), "automated", report)
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"the emulator's S3 failed the backup: {exc}") from exc
