"""The AWS API emulator (ministack, LocalStack-compatible) and the resources the unit needs on it."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.endpoints import AwsEndpoint, AwsResources, PostgresEndpoint, Secret
from harness.services.aws_persist import CHECKPOINT_PATH
from harness.services.process import (
    HttpService,
    MissingBinaryError,
    ensure_port_free,
    spawn,
    wait_until_ready,
)

NAME = "aws"
# LocalStack's conventional credentials: emulators accept any, SDKs insist on having some.
EMULATOR_ACCESS_KEY = "test"
EMULATOR_SECRET_KEY = "test"
EXPORTS_BUCKET = "dbunit-gdpr-exports"
DB_SECRET_ID = "dbunit/rds/master"
KMS_ALIAS = "alias/dbunit-harness"
# RDS keeps automated backups in its own storage; here they are objects in the unit's region and, copied,
# in a second one (the document's cross-region backup).
BACKUP_BUCKET_PREFIX = "dbunit-backups"
REQUIRED_SERVICES = ("s3", "secretsmanager", "kms", "lambda", "logs", "monitoring")


def db_secret_document(endpoint: PostgresEndpoint) -> str:
    """The JSON shape RDS stores in Secrets Manager for a master user."""
    return json.dumps(
        {
            "engine": "postgres",
            "host": endpoint.host,
            "port": endpoint.port,
            "username": endpoint.user,
            "password": endpoint.password.reveal(),
            "dbname": endpoint.dbname,
        }
    )


def exports_bucket_policy(bucket: str) -> dict[str, Any]:
    """Refuse puts that do not ask for SSE-KMS (the bucket's default encryption covers puts that ask nothing
    only where the policy allows them, so exports ask for aws:kms explicitly)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyNonKmsPuts",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            },
        ],
    }


# An upload killed between its parts (an export over one part, a backup) leaves parts that are billed storage
# but never an object; S3 removes them only by a bucket lifecycle rule.
ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS = 1
ABORT_INCOMPLETE_UPLOADS_RULE = {
    "ID": "abort-incomplete-multipart-uploads",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_UPLOADS_AFTER_DAYS},
}


def abort_incomplete_uploads(s3: Any, bucket: str) -> None:
    """Give `bucket` the rule that removes incomplete multipart uploads (its only lifecycle rule)."""
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [ABORT_INCOMPLETE_UPLOADS_RULE]}
    )


def aborts_incomplete_uploads(s3: Any, bucket: str) -> int | None:
    """Days after which `bucket`'s lifecycle aborts incomplete multipart uploads, None without such a rule."""
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return None
        raise
    days = [
        int(r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        for r in rules
        if r.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in r
    ]
    return min(days) if days else None


def create_unit_resources(aws: AwsEndpoint, db: PostgresEndpoint) -> AwsResources:
    """Create (or update) the exports bucket, the DB credentials secret and the KMS key. Idempotent."""
    s3 = aws.client("s3")
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if EXPORTS_BUCKET not in existing:
        kwargs: dict[str, Any] = {"Bucket": EXPORTS_BUCKET}
        if aws.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
        s3.create_bucket(**kwargs)

    kms = aws.client("kms")
    aliases = {a["AliasName"]: a.get("TargetKeyId", "") for a in kms.list_aliases().get("Aliases", [])}
    key_id = aliases.get(KMS_ALIAS, "")
    if not key_id:
        key_id = kms.create_key(Description="dbunit-harness: GDPR exports and secrets")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)
    # Encryption at rest for the exports: SSE-KMS with the unit's key by default, and a policy refusing any
    # put that asks for something else (ministack stores the policy but does not enforce it: the security
    # check reports that as NOT EMULATED and checks the objects after the fact instead).
    s3.put_bucket_encryption(
        Bucket=EXPORTS_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_policy(Bucket=EXPORTS_BUCKET, Policy=json.dumps(exports_bucket_policy(EXPORTS_BUCKET)))
    abort_incomplete_uploads(s3, EXPORTS_BUCKET)

    sm = aws.client("secretsmanager")
    document = db_secret_document(db)
    try:
        sm.put_secret_value(SecretId=DB_SECRET_ID, SecretString=document)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=DB_SECRET_ID, SecretString=document, KmsKeyId=key_id)
    return AwsResources(exports_bucket=EXPORTS_BUCKET, db_secret_id=DB_SECRET_ID, kms_key_id=key_id)


def checkpoint(aws: AwsEndpoint) -> None:
    """Have the embedded emulator save its state now (secrets, keys, buckets), so a SIGKILL cannot lose it."""
    request = urllib.request.Request(f"{aws.url}{CHECKPOINT_PATH}", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        json.loads(response.read())


def backup_bucket(region: str) -> str:
    return f"{BACKUP_BUCKET_PREFIX}-{region}"


def region_key(aws: AwsEndpoint, region: str) -> str:
    """The harness's KMS key in `region` (KMS keys are regional), created with its alias if missing."""
    kms = aws.client("kms", region_name=region)
    aliases = {a["AliasName"]: a.get("TargetKeyId", "") for a in kms.list_aliases().get("Aliases", [])}
    key_id = aliases.get(KMS_ALIAS, "")
    if not key_id:
        key_id = kms.create_key(Description="dbunit-harness: backups")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)
    return str(key_id)


def create_backup_buckets(aws: AwsEndpoint, copy_region: str) -> tuple[str, str]:
    """The backup bucket in the unit's region and its copy in `copy_region`, each encrypted by default with
    the harness's KMS key of its region. Idempotent; returns (primary, copy)."""
    made = []
    for region in (aws.region, copy_region):
        kms_key_id = region_key(aws, region)
        s3 = aws.client("s3", region_name=region)
        name = backup_bucket(region)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            kwargs: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**kwargs)
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id}}
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})
        abort_incomplete_uploads(s3, name)
        made.append(name)
    return made[0], made[1]


@dataclass(kw_only=True)
class AwsEmulatorService(HttpService):
    name: ClassVar[str] = NAME
    work_dir: Path
    region: str

    def endpoint(self) -> AwsEndpoint:
        return AwsEndpoint(self.url, self.region, EMULATOR_ACCESS_KEY, Secret(EMULATOR_SECRET_KEY))

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_ministack/health", timeout=2) as response:
            data = json.loads(response.read())
        missing = [s for s in REQUIRED_SERVICES if data.get("services", {}).get(s) not in ("available", "running")]
        if missing:
            raise RuntimeError(f"emulator is up but these services are not available: {', '.join(missing)}")
        return dict(data)

    def start(self) -> None:
        try:
            import ministack  # noqa: F401
        except ImportError:
            raise MissingBinaryError("the ministack package is not installed; run `make install`") from None
        ensure_port_free(self.port, "the AWS emulator", "aws_port")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            # ministack binds every interface unless told otherwise.
            "BIND_HOST": self.host,
            "GATEWAY_PORT": str(self.port),
            "MINISTACK_REGION": self.region,
            # Its pid file, logs and S3 objects go to TMPDIR and S3_DATA_DIR: keep them in our state.
            "TMPDIR": str(self.work_dir),
            "S3_DATA_DIR": str(self.work_dir / "s3"),
            # Everything the unit holds outlives a stop, a restart and a SIGKILL, as it would on AWS:
            # object bodies are written through, the rest is checkpointed (see aws_persist).
            "S3_PERSIST": "1",
            "PERSIST_STATE": "1",
            "STATE_DIR": str(self.work_dir / "state"),
            "LOG_LEVEL": "INFO",
            # With `cryptography` importable, ministack opens IoT's MQTT-over-TLS listener on 0.0.0.0:8883 (found
            # by `harness verify security`): the unit uses no IoT, and nothing may listen beyond loopback.
            "IOT_MTLS_ENABLED": "0",
        }
        command = [sys.executable, "-m", "harness.services.aws_persist"]
        record = spawn(NAME, command, self.log_path, env=env, cwd=self.work_dir)
        self.pids.write(record)
        wait_until_ready(record, self.health, timeout_s=self.timeout_s, log_path=self.log_path, what="AWS emulator")

    def facts(self) -> dict[str, Any]:
        return {"emulator": "ministack", "version": self.health().get("version", ""), "region": self.region}
