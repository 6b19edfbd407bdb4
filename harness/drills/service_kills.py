"""Drill: every service of the unit SIGKILLed in turn, then `harness up`; nothing the unit holds is lost.

What "holds" means here is what AWS keeps across any outage: the database's tables (checksums), the
emulator's buckets and objects, secrets, KMS keys and aliases, alarms, the backups, and the Lambda
functions with their configuration. Redis is the exception on AWS too: a cache.t3.micro node without
backups comes back empty, so the drill checks that it comes back, not what it held.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from harness.backends.base import Backend
from harness.backup.checksums import table_checksums
from harness.drills.result import DrillResult
from harness.endpoints import StackEndpoints
from harness.services.aws_persist import CHECKPOINT_DELAY_S

ORDER = ("postgres", "pgbouncer", "redis", "aws", "lambda")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def unit_state(stack: StackEndpoints) -> dict[str, Any]:
    """A comparable picture of everything the unit keeps."""
    aws = stack.aws
    s3 = aws.client("s3")
    objects = {}
    for bucket in sorted(b["Name"] for b in s3.list_buckets().get("Buckets", [])):
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [(o["Key"], o["Size"], o.get("ETag", "")) for o in page.get("Contents", [])]
        objects[bucket] = _digest(sorted(keys)) + f" ({len(keys)} objects)"
    sm = aws.client("secretsmanager")
    secrets = {
        s["Name"]: _digest(sm.get_secret_value(SecretId=s["Name"])["SecretString"])
        for s in sm.list_secrets().get("SecretList", [])
    }
    kms = aws.client("kms")
    aliases = {a["AliasName"]: a.get("TargetKeyId", "") for a in kms.list_aliases().get("Aliases", [])}
    alarms = sorted(a["AlarmName"] for a in aws.client("cloudwatch").describe_alarms().get("MetricAlarms", []))
    functions = {
        f["FunctionName"]: _digest(
            {k: f.get(k) for k in ("CodeSha256", "MemorySize", "Timeout", "Handler", "Environment")}
        )
        for f in aws.client("lambda").list_functions().get("Functions", [])
    }
    with stack.direct.connect(autocommit=True, connect_timeout=10) as conn:
        tables = {name: s.as_dict() for name, s in table_checksums(conn).items()}
    return {
        "s3": objects,
        "secrets": secrets,
        "kms_aliases": aliases,
        "alarms": alarms,
        "lambda_functions": functions,
        "tables": _digest(tables) + f" ({len(tables)} tables)",
    }


def run(backend: Backend, stack: StackEndpoints, report: Any = print) -> DrillResult:
    result = DrillResult("services")
    # Changes younger than the emulator's checkpoint delay are what a SIGKILL may still lose.
    time.sleep(CHECKPOINT_DELAY_S * 2)
    before = unit_state(stack)
    result.figures["held"] = {k: len(v) if isinstance(v, (dict, list)) else v for k, v in before.items()}
    for service in ORDER:
        if not backend.can_restart(service):
            result.notes.append(f"{service}: NOT EMULATED on the {backend.name} backend: it runs no {service} to kill")
            continue
        backend.kill(service, report)
        began = time.monotonic()
        stack = backend.up(report)
        result.figures[f"{service}_back_s"] = round(time.monotonic() - began, 2)
    after = unit_state(stack)
    for key in before:
        same = before[key] == after[key]
        detail = "unchanged" if same else f"before {before[key]!r}, after {after[key]!r}"
        result.check(key, same, detail)
    with stack.redis.client() as redis:
        result.check("redis", bool(redis.ping()), "back and answering; its contents are lost by design")
    result.notes.append(
        f"the AWS emulator saves its state within {CHECKPOINT_DELAY_S} s of each change (S3 object bodies at "
        "once): a SIGKILL loses only what changed in that window"
    )
    result.notes.append("Redis: no persistence, as ElastiCache cache.t3.micro without backups; it restarts empty")
    return result
