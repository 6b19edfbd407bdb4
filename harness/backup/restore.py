"""Restores like RDS: never over the running instance, always a new one on its own port and state.

A restore downloads a base backup, checks every object against the SHA-256 recorded when it was made,
unpacks it, runs pg_verifybackup against its manifest (a corrupted backup is refused here, before any
server starts), then starts a new PostgreSQL with the unit's sizing that replays archived WAL from S3 to
the snapshot's restore point or to a given time, and promotes. The instance's PID record and data live
under <state>/restores/<id>/; `drop_restore` (and `harness down`) stop it by PID and delete it, and a
restore that fails half-way cleans up after itself.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from harness.backup.catalog import BACKUP_FILES, BackupError, BackupInfo, keys_under, list_backups
from harness.backup.snapshot import BackupTarget, sha256_file
from harness.endpoints import PostgresEndpoint, Secret
from harness.progress import Progress, transfer_callback
from harness.services.cgroups import CgroupLimiter
from harness.services.osuser import ServerUser
from harness.services.postgres import PostgresService, bin_dir
from harness.services.process import PidFiles, free_port, stop_process
from harness.services.wal_archive import WAL_PREFIX, segment_of, unpack
from harness.sizing import PostgresSizing

RESTORES_DIR = "restores"  # the embedded backend stops what is under it on `harness down`
PROMOTE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RestoreSpec:
    """What a new instance needs besides the backup: the unit's identity, sizing and where to live."""

    state_dir: Path
    master_user: str
    master_password: Secret
    sizing: PostgresSizing
    user: ServerUser
    cgroups: bool
    port: int = 0  # 0: a free port
    timeout_s: float = 60.0


@dataclass(frozen=True)
class RestoredInstance:
    restore_id: str
    backup: BackupInfo
    target: str  # "restore point <name>" or "time <iso>"
    directory: Path
    endpoint: PostgresEndpoint
    seconds: dict[str, float]  # download, verify, replay (start to promoted)


def restores_root(state_dir: Path) -> Path:
    return state_dir / RESTORES_DIR


def _service(spec: RestoreSpec, directory: Path, port: int, dbname: str, settings: dict[str, str]) -> PostgresService:
    cgroup = CgroupLimiter(f"dbunit-harness-{directory.name}") if spec.cgroups else None
    return PostgresService(
        data_dir=directory / "data",
        log_path=directory / "postgres.log",
        port=port,
        database=dbname,
        master_user=spec.master_user,
        master_password=spec.master_password,
        sizing=spec.sizing,
        user=spec.user,
        pids=PidFiles(directory / "run"),
        cgroup=cgroup,
        timeout_s=spec.timeout_s,
        extra_settings=settings,
    )


def pick_backup(backups: list[BackupInfo], to_time: datetime) -> BackupInfo:
    """The newest backup whose restore point is at or before `to_time` (PITR starts from it)."""
    usable = [b for b in backups if b.created <= to_time]
    if not usable:
        first = backups[0].created_at if backups else "none"
        raise BackupError(f"no backup at or before {to_time.isoformat()} (oldest: {first}); choose a later time")
    return usable[-1]


# One GET per file instead of boto3's concurrent 8 MiB ranges: the emulator reads the whole object for every
# ranged GET, so a large base backup fetched in ranges crawls; S3 itself serves either well.
ONE_STREAM = TransferConfig(multipart_threshold=2**40)


def _fetch(target: BackupTarget, bucket: str, region: str, info: BackupInfo, into: Path) -> None:
    s3 = target.s3(region)
    with Progress(f"download {info.backup_id}", total=info.size_bytes // 2**20, unit="MiB") as progress:
        moved = transfer_callback(progress)
        for name in BACKUP_FILES:
            s3.download_file(bucket, info.key(name), str(into / name), Callback=moved, Config=ONE_STREAM)
    for name in BACKUP_FILES:
        path = into / name
        if sha256_file(path) != info.files.get(name):
            raise BackupError(
                f"backup {info.backup_id} refused: {name} in s3://{bucket} does not match the SHA-256 recorded "
                "when it was made (corrupted or replaced); restore another backup"
            )


def _prefetch_wal(s3: Any, bucket: str, info: BackupInfo, upto: str | None, into: Path) -> int:
    """Download (and check) the archived segments from the backup's first one on, up to `upto` (None: all)."""
    into.mkdir(parents=True, exist_ok=True)
    count = 0
    first = info.start_wal[8:24]
    for key in keys_under(s3, bucket, WAL_PREFIX):
        segment = segment_of(key)
        position = segment[8:24]
        if not segment.endswith(".history") and (position < first or (upto is not None and position > upto[8:24])):
            continue
        body = s3.get_object(Bucket=bucket, Key=key)
        try:
            data = unpack(body["Body"].read(), body.get("Metadata", {}).get("sha256"))
        except (OSError, ValueError) as exc:
            raise BackupError(
                f"archived WAL {key} in s3://{bucket} is damaged ({exc}); restore to an earlier time"
            ) from None
        (into / segment).write_bytes(data)
        count += 1
    return count


def recovery_settings(wal_dir: Path) -> dict[str, str]:
    """Replay the prefetched segments (a missing one ends recovery, as PostgreSQL expects), archive nothing.

    No read-only connections while replaying (hot_standby off): a hot standby pauses recovery for good when
    the WAL says the source once ran with a larger max_connections (the unit restarted as a larger class,
    as a capacity sweep does), and a restore to the unit's own size must still come up, as on RDS."""
    command = f"cp {wal_dir}/%f %p".replace("'", "''")
    return {
        "archive_mode": "off",
        "restore_command": f"'{command}'",
        "recovery_target_action": "'promote'",
        "hot_standby": "off",
    }


def _unpack(directory: Path, data: Path) -> None:
    data.mkdir(parents=True)
    result = subprocess.run(
        ["tar", "-xzf", str(directory / "base.tar.gz"), "-C", str(data)], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise BackupError(f"backup refused: base.tar.gz does not unpack ({result.stderr.strip()})")


def verify_backup(manifest: Path, data: Path) -> None:
    """pg_verifybackup: every file's size and SHA-256 against the manifest, and the WAL it needs parses."""
    result = subprocess.run(
        [str(bin_dir() / "pg_verifybackup"), "--manifest-path", str(manifest), str(data)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise BackupError(f"backup refused by pg_verifybackup: {(result.stderr or result.stdout).strip()}")


def restore(
    target: BackupTarget,
    spec: RestoreSpec,
    *,
    snapshot: str | None = None,
    to_time: datetime | None = None,
    region: str | None = None,
    report: Callable[[str], None] = lambda _: None,
) -> RestoredInstance:
    """Bring up a new instance from a snapshot (its restore point), at a time (PITR), or, with neither, at the
    end of the archived WAL (the latest restorable time); promoted and ready."""
    if snapshot is not None and to_time is not None:
        raise BackupError("give one of --snapshot ID or --to-time T, not both")
    region = region or target.aws.region
    if region not in (target.aws.region, target.copy_region):
        raise BackupError(f"backups exist in {target.aws.region} and {target.copy_region}, not {region}")
    bucket = target.copy_bucket if region == target.copy_region else target.bucket
    s3 = target.s3(region)
    backups = list_backups(s3, bucket)
    recovery: dict[str, str] = {}
    if snapshot is not None:
        matches = [b for b in backups if b.backup_id == snapshot]
        if not matches:
            known = ", ".join(b.backup_id for b in backups) or "none"
            raise BackupError(f"no backup {snapshot!r} in s3://{bucket} (backups: {known}); see `harness backup list`")
        info = matches[0]
        recovery = {"recovery_target_name": f"'{info.restore_point}'"}
        described = f"restore point {info.restore_point}"
    elif to_time is not None:
        info = pick_backup(backups, to_time)
        recovery = {"recovery_target_time": f"'{to_time.astimezone(UTC).isoformat()}'"}
        described = f"time {to_time.astimezone(UTC).isoformat()}"
    else:
        if not backups:
            raise BackupError(f"no backups in s3://{bucket}: make one with `harness backup create`")
        info = backups[-1]
        described = "the end of the archived WAL"
    restore_id = "restore-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    directory = restores_root(spec.state_dir) / restore_id
    directory.mkdir(parents=True)
    service: PostgresService | None = None
    seconds: dict[str, float] = {}
    try:
        began = time.monotonic()
        _fetch(target, bucket, region, info, directory)
        seconds["download_s"] = time.monotonic() - began
        mark = time.monotonic()
        data = directory / "data"
        _unpack(directory, data)
        verify_backup(directory / "backup_manifest", data)
        seconds["verify_s"] = time.monotonic() - mark
        report(f"{info.backup_id}: downloaded and verified (pg_verifybackup) in {time.monotonic() - began:.1f} s")
        upto = info.restore_point_wal if snapshot is not None else None
        segments = _prefetch_wal(s3, bucket, info, upto, directory / "wal")
        seconds["download_s"] = time.monotonic() - began - seconds["verify_s"]
        report(f"{segments} archived WAL segments fetched")
        (data / "recovery.signal").write_text("")
        subprocess.run(["chown", "-R", f"{spec.user.uid}:{spec.user.gid}", str(directory)], check=True)
        data.chmod(0o700)
        settings = {**recovery_settings(directory / "wal"), **recovery}
        port = spec.port or free_port()
        service = _service(spec, directory, port, info.database, settings)
        mark = time.monotonic()
        service.start()
        _wait_promoted(service.endpoint(), spec.timeout_s + PROMOTE_TIMEOUT_S, directory / "postgres.log")
        seconds["replay_s"] = time.monotonic() - mark
        report(f"{restore_id}: replayed to {described} and promoted on port {port} in {seconds['replay_s']:.1f} s")
        return RestoredInstance(restore_id, info, described, directory, service.endpoint(), seconds)
    except BaseException:
        if service is not None:
            service.stop()
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _wait_promoted(endpoint: PostgresEndpoint, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with endpoint.connect(autocommit=True, connect_timeout=2) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except Exception as exc:
            last = str(exc)
        else:
            last = "still in recovery"
        if time.monotonic() > deadline:
            raise BackupError(
                f"the restored instance did not finish recovery within {timeout_s:.0f} s ({last}); see {log}"
            )
        time.sleep(0.2)


def running_restores(state_dir: Path) -> list[Path]:
    root = restores_root(state_dir)
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def drop_restore(directory: Path) -> bool:
    """Stop a restored instance by its PID record and delete its directory. True if it was running."""
    stopped = False
    for record in PidFiles(directory / "run").all():
        # SIGINT is PostgreSQL's fast shutdown; stop_process kills the group if it lingers.
        stopped = stop_process(record, sig=signal.SIGINT, timeout_s=30) or stopped
    CgroupLimiter(f"dbunit-harness-{directory.name}").remove()
    shutil.rmtree(directory, ignore_errors=True)
    return stopped
