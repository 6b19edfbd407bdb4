"""Where backups live in S3 and what is known about each: the layout, the metadata, the listing.

Layout of a backup bucket (one per region, `dbunit-backups-<region>`):

    wal/<segment>                      every archived WAL segment (archive_command, services/wal_archive.py)
    backups/<id>/base.tar.gz           pg_basebackup's data directory, with the WAL it needs to be consistent
    backups/<id>/backup_manifest       its manifest (SHA-256 of every file), for pg_verifybackup
    backups/<id>/backup.json           this module's metadata, written last: a backup without it is incomplete

The metadata carries the restore point (a named point in the WAL at which the table checksums were taken,
with writers held off), so a restore of the snapshot can be compared table by table with the source.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

BACKUPS_PREFIX = "backups/"
METADATA = "backup.json"
BACKUP_FILES = ("base.tar.gz", "backup_manifest")


class BackupError(RuntimeError):
    """A backup or restore could not be made or was refused; the message says why and what to do."""


@dataclass(frozen=True)
class BackupInfo:
    backup_id: str
    kind: str  # "automated" (made by seed) or "manual" (harness backup create: an RDS manual snapshot)
    created_at: str  # ISO 8601, UTC: when the restore point was taken
    region: str
    size_bytes: int
    start_wal: str  # the first WAL segment the backup needs
    restore_point: str
    restore_point_lsn: str
    restore_point_wal: str
    database: str
    server_version: str
    files: dict[str, str]  # name -> sha256 of the object as uploaded
    checksums: dict[str, dict[str, Any]]  # schema.table -> {"rows", "checksum"} at the restore point
    top10: list[list[int]] = field(default_factory=list)  # index answers to the first ground-truth queries
    dataset_key: str = ""
    copied_to: list[str] = field(default_factory=list)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def key(self, name: str) -> str:
        return f"{BACKUPS_PREFIX}{self.backup_id}/{name}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> BackupInfo:
        raw = json.loads(text)
        return cls(**raw)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.backup_id,
            "kind": self.kind,
            "time": self.created_at,
            "size_bytes": self.size_bytes,
            "region": self.region,
            "copied_to": list(self.copied_to),
            "tables": len(self.checksums),
        }


def list_backups(s3: Any, bucket: str) -> list[BackupInfo]:
    """Complete backups in a bucket, oldest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=BACKUPS_PREFIX):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/" + METADATA):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found.append(BackupInfo.from_json(body.decode()))
    return sorted(found, key=lambda b: b.created_at)


def find_backup(s3: Any, bucket: str, backup_id: str) -> BackupInfo:
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{BACKUPS_PREFIX}{backup_id}/{METADATA}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        known = ", ".join(b.backup_id for b in list_backups(s3, bucket)) or "none"
        raise BackupError(
            f"no backup {backup_id!r} in s3://{bucket} (backups: {known}); see `harness backup list`"
        ) from None
    return BackupInfo.from_json(body.decode())


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys
