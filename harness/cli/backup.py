"""`harness backup create | list | restore | drop | prune`: RDS's snapshots, automated backups and restores.

Contract with harness.cli: `add_backup_command(subparsers, parents=[common])` registers the sub-commands;
each returns 0 on success, 1 when the backup, restore or validation failed (the message says why), 2 on
bad arguments. A restore always brings up a new instance (its endpoint is printed) and validates it; an
instance that fails validation is stopped and deleted, one that passes stays up until `harness backup drop`
or `harness down` (or at once with --drop: the monthly restore test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.backup.catalog import BackupError, list_backups
from harness.backup.restore import drop_restore, restore, restores_root, running_restores
from harness.backup.retention import apply_retention, retention_of
from harness.backup.snapshot import create_backup
from harness.backup.unit import backup_target, restore_spec, seed_queries
from harness.backup.validate import validate
from harness.cli.common import quoted, running_stack, settings_from
from harness.config import Settings
from harness.endpoints import EndpointFileError, StackEndpoints
from harness.thresholds import ExitCode


def add_backup_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="snapshots, automated backups (WAL archive), cross-region copies, restores to a new instance",
    )
    sub = backup.add_subparsers(dest="backup_command", required=True)
    create = sub.add_parser("create", parents=list(parents), help="a manual snapshot, copied to the second region")
    create.set_defaults(func=run_create)
    listing = sub.add_parser("list", parents=list(parents), help="backups with id, time, size and region")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--region", help="list the copies in this region (default: the unit's)")
    listing.set_defaults(func=run_list)
    rest = sub.add_parser(
        "restore",
        parents=list(parents),
        help="restore to a NEW instance (own port and state) and validate it",
        description="Exactly one of --snapshot, --to-time, --latest. Exit 0 when the new instance validated.",
    )
    rest.add_argument("--snapshot", help="a backup id from `harness backup list` (restores its restore point)")
    rest.add_argument("--to-time", type=_timestamp, help="point in time, ISO 8601 (UTC when no offset is given)")
    rest.add_argument("--latest", action="store_true", help="the latest restorable time: all archived WAL")
    rest.add_argument("--region", help="restore from the copy in this region")
    rest.add_argument("--drop", action="store_true", help="stop and delete the instance after validating it")
    rest.add_argument("--json", action="store_true", help="print the result as JSON")
    rest.set_defaults(func=run_restore)
    drop = sub.add_parser("drop", parents=list(parents), help="stop and delete a restored instance (or --all)")
    drop.add_argument("restore_id", nargs="?")
    drop.add_argument("--all", action="store_true")
    drop.set_defaults(func=run_drop)
    prune = sub.add_parser("prune", parents=list(parents), help="apply the 7-day retention to both regions")
    prune.set_defaults(func=run_prune)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not an ISO 8601 time, e.g. 2026-11-29T14:05:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _context(args: argparse.Namespace) -> tuple[Settings, StackEndpoints]:
    settings = settings_from(args)
    return settings, running_stack(settings)


def _fail(exc: BaseException) -> int:
    print(f"harness backup: {exc}", file=sys.stderr)
    return ExitCode.FAILED


def run_create(args: argparse.Namespace) -> int:
    try:
        settings, stack = _context(args)
        target = backup_target(settings, stack, seed_queries(settings, stack))
        began = time.monotonic()
        info = create_backup(target, "manual", report=lambda line: print(line, file=sys.stderr))
        for bucket, region in ((target.bucket, target.aws.region), (target.copy_bucket, target.copy_region)):
            apply_retention(target.s3(region), bucket, datetime.now(UTC), retention_of(settings.unit))
    except (BackupError, EndpointFileError, BotoCoreError, ClientError) as exc:
        return _fail(exc)
    print(f"{info.backup_id}: {info.size_bytes / 1e6:.1f} MB, {len(info.checksums)} tables, ", end="")
    print(f"regions {info.region} + {', '.join(info.copied_to)}, in {time.monotonic() - began:.1f} s")
    return ExitCode.OK


def run_list(args: argparse.Namespace) -> int:
    try:
        settings, stack = _context(args)
        target = backup_target(settings, stack)
        region = args.region or target.aws.region
        bucket = target.copy_bucket if region == target.copy_region else target.bucket
        backups = list_backups(target.s3(region), bucket)
    except (BackupError, EndpointFileError, BotoCoreError, ClientError) as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps([b.summary() for b in backups], indent=1))
        return ExitCode.OK
    if not backups:
        print(f"no backups in s3://{bucket}")
    for b in backups:
        copies = ",".join(b.copied_to) or "-"
        print(
            f"{b.backup_id:<36} {b.kind:<9} {b.created_at}  {b.size_bytes / 1e6:8.1f} MB  {b.region}  copies: {copies}"
        )
    return ExitCode.OK


def run_restore(args: argparse.Namespace) -> int:
    chosen = [args.snapshot is not None, args.to_time is not None, args.latest]
    if sum(chosen) != 1:
        print("harness backup restore: give exactly one of --snapshot ID, --to-time T, --latest", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        settings, stack = _context(args)
        queries = seed_queries(settings, stack)
        target = backup_target(settings, stack, queries)
        began = time.monotonic()
        restored = restore(
            target,
            restore_spec(settings, stack),
            snapshot=args.snapshot,
            to_time=args.to_time,
            region=args.region,
            report=lambda line: print(line, file=sys.stderr),
        )
    except (BackupError, EndpointFileError, BotoCoreError, ClientError) as exc:
        return _fail(exc)
    try:
        result = validate(restored.endpoint, restored.backup, exact=args.snapshot is not None, queries=queries)
    except BaseException:
        drop_restore(restored.directory)
        raise
    rto = time.monotonic() - began
    if args.drop or not result.passed:
        drop_restore(restored.directory)
    summary = {
        "restore_id": restored.restore_id,
        "backup": restored.backup.backup_id,
        "target": restored.target,
        "endpoint": restored.endpoint.url(),
        "rto_s": round(rto, 1),
        "seconds": {k: round(v, 1) for k, v in restored.seconds.items()},
        "validation": result.as_dict(),
        "running": not (args.drop or not result.passed),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print("\n".join(result.lines()))
        state = "running at " + restored.endpoint.url() if summary["running"] else "stopped and deleted"
        verdict = "VALIDATED" if result.passed else "REFUSED (validation failed)"
        print(f"{restored.restore_id}: {verdict}, restore wall time (RTO) {rto:.1f} s; {state}")
    return ExitCode.OK if result.passed else ExitCode.FAILED


def run_drop(args: argparse.Namespace) -> int:
    try:
        settings, _ = _context(args)
    except (BackupError, EndpointFileError) as exc:
        return _fail(exc)
    if args.all:
        targets = running_restores(settings.state_dir)
    elif args.restore_id:
        targets = [restores_root(settings.state_dir) / args.restore_id]
        if not targets[0].is_dir():
            print(
                f"harness backup drop: no restore {args.restore_id} in {restores_root(settings.state_dir)}",
                file=sys.stderr,
            )
            return ExitCode.FAILED
    else:
        print("harness backup drop: give a restore id or --all", file=sys.stderr)
        return ExitCode.BAD_INPUT
    for directory in targets:
        stopped = drop_restore(directory)
        print(f"{directory.name}: {'stopped and ' if stopped else ''}deleted")
    return ExitCode.OK


def run_prune(args: argparse.Namespace) -> int:
    try:
        settings, stack = _context(args)
        target = backup_target(settings, stack)
        for bucket, region in ((target.bucket, target.aws.region), (target.copy_bucket, target.copy_region)):
            plan = apply_retention(target.s3(region), bucket, datetime.now(UTC), retention_of(settings.unit))
            print(f"{region}: {len(plan.expired_backups)} backups and {len(plan.expired_wal)} WAL segments expired")
    except (BackupError, EndpointFileError, BotoCoreError, ClientError) as exc:
        return _fail(exc)
    return ExitCode.OK
