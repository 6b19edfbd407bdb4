"""PostgreSQL's archive_command: every finished WAL segment to the emulator's S3, gzipped, with its SHA-256.

RDS archives the instance's WAL continuously (that is what makes point-in-time restore possible); here the
server runs `python -m harness.services.wal_archive push CONFIG %p %f` for each finished segment. The
server runs as the unprivileged account, so everything it needs (endpoint, bucket, key) is in one JSON
file it can read: the emulator's fixed credentials only, never a database password. (A restore fetches
the segments it needs in one go beforehand: harness/backup/restore.py.)

Rules from PostgreSQL's documentation that this follows: push must fail (non-zero) unless the segment is
durably stored, must succeed when the same segment is archived again with identical content, and must
refuse to overwrite a different one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WAL_PREFIX = "wal/"
SUFFIX = ".gz"
ARCHIVE_CONFIG = "wal-archive.json"
# RDS uploads WAL every 5 minutes; a finished segment goes at once, and a quiet server switches segments
# after this long, which bounds what a lost instance costs (the RPO of a restore to the latest time).
ARCHIVE_TIMEOUT = "60s"


def _command(*words: str) -> str:
    # postgresql.conf quotes strings in single quotes, doubled inside.
    return "'" + " ".join(words).replace("'", "''") + "'"


def archive_settings(config_path: Path) -> dict[str, str]:
    """The server settings that archive every WAL segment to S3 through this module."""
    return {
        "archive_mode": "on",
        "archive_command": _command(sys.executable, "-m", __name__, "push", str(config_path), "%p", "%f"),
        "archive_timeout": f"'{ARCHIVE_TIMEOUT}'",
    }


@dataclass(frozen=True)
class ArchiveConfig:
    url: str
    region: str
    access_key_id: str
    secret_access_key: str
    bucket: str
    kms_key_id: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(asdict(self)))
        staging.chmod(0o600)
        staging.replace(path)

    @classmethod
    def load(cls, path: Path) -> ArchiveConfig:
        return cls(**json.loads(path.read_text()))

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url or None,
            region_name=self.region,
            aws_access_key_id=self.access_key_id or None,
            aws_secret_access_key=self.secret_access_key or None,
            # PostgreSQL waits for archive_command; a hung upload must fail so that it is retried.
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}),
        )


def push(config: ArchiveConfig, source: Path, segment: str) -> int:
    s3 = config.client()
    data = source.read_bytes()
    key = wal_key(segment)
    digest = hashlib.sha256(data).hexdigest()
    try:
        existing = s3.head_object(Bucket=config.bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        existing = None
    if existing is not None:
        if existing.get("Metadata", {}).get("sha256") == digest:
            return 0
        print(f"wal_archive: {key} exists with different content; refusing to overwrite", file=sys.stderr)
        return 1
    extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms"}
    if config.kms_key_id:
        extra["SSEKMSKeyId"] = config.kms_key_id
    # A segment switched out by archive_timeout is mostly zeros: gzip level 1 shrinks it to almost nothing.
    body = gzip.compress(data, compresslevel=1)
    s3.put_object(Bucket=config.bucket, Key=key, Body=body, Metadata={"sha256": digest}, **extra)
    return 0


def wal_key(segment: str) -> str:
    return f"{WAL_PREFIX}{segment}{SUFFIX}"


def segment_of(key: str) -> str:
    return key.removeprefix(WAL_PREFIX).removesuffix(SUFFIX)


def unpack(body: bytes, digest: str | None) -> bytes:
    """A stored segment's bytes, checked against the SHA-256 its upload recorded."""
    data = gzip.decompress(body)
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise ValueError("archived WAL segment does not match its recorded SHA-256")
    return data


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "push":
        print("usage: wal_archive push CONFIG PATH SEGMENT", file=sys.stderr)
        return 2
    _, config_path, path, segment = argv
    return push(ArchiveConfig.load(Path(config_path)), Path(path), segment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
