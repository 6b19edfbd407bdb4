"""Base backups (RDS snapshots), made with the wheel's pg_basebackup and stored in the emulator's S3.

A snapshot is pg_basebackup's tar output (data directory, the WAL it needs, a SHA-256 manifest) plus a
restore point taken right after it: while every user table is locked against writers (SHARE mode: readers
go on), the per-table checksums are computed and `pg_create_restore_point` marks that instant in the WAL.
A restore replays to that point, so it must hold exactly those checksums. The point's WAL segment is then
switched out and the call waits until the archiver has stored it, so the snapshot is restorable when this
returns. Each backup is copied to the second region's bucket with the WAL it needs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from harness.backup.catalog import BACKUP_FILES, BackupError, BackupInfo, keys_under
from harness.backup.checksums import table_checksums
from harness.endpoints import AwsEndpoint, PostgresEndpoint
from harness.progress import Progress, transfer_callback
from harness.services.aws import backup_bucket, region_key
from harness.services.postgres import bin_dir
from harness.services.wal_archive import WAL_PREFIX

ARCHIVE_WAIT_S = 120.0
# How many of the seed's held-out queries a restore must answer exactly as the source did.
TOP10_QUERIES = 10


@dataclass(frozen=True)
class BackupTarget:
    """Where backups come from and go to."""

    db: PostgresEndpoint  # the unit's server itself (master user), not the proxy: replication needs it
    aws: AwsEndpoint
    copy_region: str
    work_dir: Path  # scratch space under the state directory
    queries: Any = None  # the seed's held-out query vectors (numpy array) when the unit is seeded

    @property
    def bucket(self) -> str:
        return backup_bucket(self.aws.region)

    @property
    def copy_bucket(self) -> str:
        return backup_bucket(self.copy_region)

    def sse(self, region: str | None = None) -> dict[str, str]:
        """put_object arguments that encrypt with the harness's KMS key of the region."""
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": region_key(self.aws, region or self.aws.region)}

    def s3(self, region: str | None = None) -> Any:
        return self.aws.client("s3", region_name=region or self.aws.region)


def new_backup_id(kind: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{'auto' if kind == 'automated' else 'manual'}-{stamp}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _basebackup(target: BackupTarget, out: Path) -> None:
    db = target.db
    command = [
        str(bin_dir() / "pg_basebackup"),
        f"--host={db.host}",
        f"--port={db.port}",
        f"--username={db.user}",
        f"--pgdata={out}",
        "--format=tar",
        "--compress=client-gzip:1",
        "--wal-method=fetch",
        "--checkpoint=fast",
        "--manifest-checksums=SHA256",
        "--no-password",
    ]
    env = {**os.environ, "PGPASSWORD": db.password.reveal(), "PGCONNECT_TIMEOUT": "10"}
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, env=env, timeout=1800)
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"pg_basebackup failed ({exc.returncode}): {exc.stderr.strip()}") from None
    except subprocess.TimeoutExpired:
        raise BackupError("pg_basebackup did not finish within 30 minutes") from None


def _restore_point(conn: Any, name: str) -> tuple[dict[str, Any], str, str, str]:
    """Checksums, restore point LSN, its segment and the server's time, with writers held off."""
    with conn.transaction():
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_%'"
        ).fetchall()
        if tables:
            names = sql.SQL(", ").join(sql.SQL(t[0]) for t in tables)
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(names))
        sums = {name: s.as_dict() for name, s in table_checksums(conn).items()}
        lsn, segment, at = conn.execute(
            "SELECT lsn::text, pg_walfile_name(lsn), now() FROM pg_create_restore_point(%s) AS lsn", (name,)
        ).fetchone()
    return sums, str(lsn), str(segment), at.astimezone(UTC).isoformat()


def wait_archived(conn: Any, segment: str, timeout_s: float = ARCHIVE_WAIT_S) -> None:
    """Switch WAL and wait until `segment` is in the archive (the archiver reports it)."""
    # A switch returns the end of its switch record, inside the segment it closed. With no WAL written since
    # the last switch it does nothing and returns the start of the segment in use, whose name PostgreSQL 18's
    # pg_walfile_name gives as that segment's own: nothing is in it, so everything asked for is in the one
    # before. Waiting for `segment` then would wait for the next write, which an idle unit may not make for
    # a long time.
    switched_nothing, before = conn.execute(
        "SELECT (s - '0/0'::pg_lsn) % w = 0, pg_walfile_name(s - 1) "
        "FROM pg_switch_wal() AS s, (SELECT setting::numeric AS w FROM pg_settings WHERE name = 'wal_segment_size') c"
    ).fetchone()
    if switched_nothing and before[8:24] < segment[8:24]:
        segment = before
    deadline = time.monotonic() + timeout_s
    while True:
        last, failed, failed_at = conn.execute(
            "SELECT last_archived_wal, last_failed_wal, last_failed_time FROM pg_stat_archiver"
        ).fetchone()
        if last is not None and last[8:24] >= segment[8:24]:
            return
        if time.monotonic() > deadline:
            raise BackupError(
                f"WAL segment {segment} was not archived within {timeout_s:.0f} s (last archived {last}, "
                f"last failure {failed} at {failed_at}); see the archive_command errors in postgres.log"
            )
        time.sleep(0.2)


def _top10(conn: Any, queries: Any) -> list[list[int]]:
    if queries is None:
        return []
    answers = []
    for vector in list(queries)[:TOP10_QUERIES]:
        literal = "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
        rows = conn.execute(
            "SELECT doc_id FROM app.documents ORDER BY embedding <=> %s::vector LIMIT 10", (literal,)
        ).fetchall()
        answers.append([int(r[0]) for r in rows])
    return answers


def create_backup(target: BackupTarget, kind: str, report: Callable[[str], None] = lambda _: None) -> BackupInfo:
    """Make a base backup with a restore point, upload it, copy it to the second region. Returns its metadata."""
    if kind not in ("automated", "manual"):
        raise BackupError(f"backup kind must be automated or manual, got {kind!r}")
    backup_id = new_backup_id(kind)
    scratch = target.work_dir / backup_id
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        began = time.monotonic()
        _basebackup(target, scratch)
        report(f"pg_basebackup: {time.monotonic() - began:.1f} s")
        with target.db.connect(autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET statement_timeout = '10min'")
            start_wal = _start_wal(scratch / "backup_manifest")
            sums, lsn, segment, at = _restore_point(conn, backup_id)
            wait_archived(conn, segment)
            version = str(conn.execute("SHOW server_version").fetchone()[0])
            dataset = conn.execute(
                "SELECT dataset_key FROM app.seed_state LIMIT 1" if _has_seed_state(conn) else "SELECT ''"
            ).fetchone()
            top10 = _top10(conn, target.queries) if dataset and dataset[0] else []
        files = {name: sha256_file(scratch / name) for name in BACKUP_FILES}
        info = BackupInfo(
            backup_id=backup_id,
            kind=kind,
            created_at=at,
            region=target.aws.region,
            size_bytes=sum((scratch / name).stat().st_size for name in BACKUP_FILES),
            start_wal=start_wal,
            restore_point=backup_id,
            restore_point_lsn=lsn,
            restore_point_wal=segment,
            database=target.db.dbname,
            server_version=version,
            files=files,
            checksums=sums,
            top10=top10,
            dataset_key=str(dataset[0]) if dataset else "",
        )
        s3 = target.s3()
        with Progress(f"upload {backup_id}", total=info.size_bytes // 2**20, unit="MiB") as progress:
            moved = transfer_callback(progress)
            for name in BACKUP_FILES:
                s3.upload_file(
                    str(scratch / name), target.bucket, info.key(name), ExtraArgs=target.sse(), Callback=moved
                )
        s3.put_object(Bucket=target.bucket, Key=info.key("backup.json"), Body=info.to_json().encode())
        report(f"uploaded {info.size_bytes / 1e6:.1f} MB to s3://{target.bucket}/{info.key('')}")
        info = copy_to_region(target, info)
        report(f"copied to s3://{target.copy_bucket} ({target.copy_region})")
        return info
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def copy_to_region(target: BackupTarget, info: BackupInfo) -> BackupInfo:
    """Copy the backup's objects and every archived WAL segment the copy lacks to the second region."""
    source = target.s3()
    dest = target.s3(target.copy_region)
    present = set(keys_under(dest, target.copy_bucket, WAL_PREFIX))
    wanted = [k for k in keys_under(source, target.bucket, WAL_PREFIX) if k not in present]
    sse = target.sse(target.copy_region)
    for key in [info.key(name) for name in BACKUP_FILES] + wanted:
        body = source.get_object(Bucket=target.bucket, Key=key)
        dest.put_object(
            Bucket=target.copy_bucket,
            Key=key,
            Body=body["Body"].read(),
            Metadata=body.get("Metadata", {}),
            **sse,
        )
    copied = replace(info, copied_to=[*info.copied_to, target.copy_region])
    source.put_object(Bucket=target.bucket, Key=info.key("backup.json"), Body=copied.to_json().encode())
    dest.put_object(Bucket=target.copy_bucket, Key=info.key("backup.json"), Body=copied.to_json().encode())
    return copied


def _has_seed_state(conn: Any) -> bool:
    return conn.execute("SELECT to_regclass('app.seed_state') IS NOT NULL").fetchone()[0] is True


def _start_wal(manifest: Path) -> str:
    """The first WAL segment the backup needs, from its manifest's WAL-Ranges."""
    import json

    ranges = json.loads(manifest.read_text()).get("WAL-Ranges", [])
    if not ranges:
        raise BackupError(f"{manifest} has no WAL-Ranges: not a pg_basebackup manifest")
    first = ranges[0]
    timeline = int(first["Timeline"])
    hi, lo = (int(part, 16) for part in first["Start-LSN"].split("/"))
    segment_size = 16 * 1024 * 1024
    number = ((hi << 32) | lo) // segment_size
    per_log = 0x100000000 // segment_size
    return f"{timeline:08X}{number // per_log:08X}{number % per_log:08X}"
