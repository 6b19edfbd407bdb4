"""The checklist's checks that need the running unit: `harness signoff` runs them once the stack is up and
seeded, and records each result (status and evidence, never a secret) in the results file under
run.checks, where harness/checklist/checks.py reads them back. A new live check is one entry in PROBES."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from harness.checklist import backup_probes
from harness.checklist.model import CheckResult, CheckStatus
from harness.endpoints import StackEndpoints

Probe = Callable[[StackEndpoints], CheckResult]
# Every statement a probe sends is bounded: a blackholed endpoint fails the item instead of hanging the run.
STATEMENT_TIMEOUT_MS = 5_000
CONNECT_TIMEOUT_S = 5


def _query(stack: StackEndpoints, via_proxy: bool, sql: str) -> tuple[Any, float]:
    endpoint = stack.proxy if via_proxy else stack.direct
    began = time.perf_counter()
    with endpoint.connect(autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        row = conn.execute(sql).fetchone()
    return row, (time.perf_counter() - began) * 1000


def proxy_connect(stack: StackEndpoints) -> CheckResult:
    row, ms = _query(stack, True, "SELECT current_setting('server_version'), current_user")
    return CheckResult(
        CheckStatus.PASS,
        f"connected through the proxy {stack.proxy.host}:{stack.proxy.port} as {row[1]} and ran "
        f"`SELECT current_setting('server_version')` = {row[0]} in {ms:.0f} ms (connect included)",
    )


def pgvector(stack: StackEndpoints) -> CheckResult:
    sql = (
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
        "'[1,0,0]'::vector <=> '[0,1,0]'::vector, "
        "(SELECT count(*) FROM pg_indexes WHERE indexdef ILIKE '%USING hnsw%')"
    )
    row, _ = _query(stack, False, sql)
    version, distance, hnsw = row
    if version is None:
        return CheckResult(CheckStatus.FAIL, "the vector extension is not installed (pg_extension has no 'vector')")
    # Orthogonal unit vectors are at cosine distance exactly 1: the operator works, not merely exists.
    ok = abs(float(distance) - 1.0) < 1e-9
    return CheckResult(
        CheckStatus.PASS if ok else CheckStatus.FAIL,
        f"vector {version} installed; `'[1,0,0]' <=> '[0,1,0]'` = {float(distance):g} (expected 1); "
        f"{hnsw} HNSW index(es)",
    )


def kms_key(stack: StackEndpoints) -> CheckResult:
    key_id = stack.resources.kms_key_id
    if not key_id:
        return CheckResult(CheckStatus.FAIL, "the endpoint file names no KMS key")
    meta = stack.aws.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
    state = meta.get("KeyState")
    return CheckResult(
        CheckStatus.PASS if state == "Enabled" else CheckStatus.FAIL,
        f"kms describe-key {key_id}: KeyState {state}, KeyUsage {meta.get('KeyUsage')}",
    )


def db_secret(stack: StackEndpoints) -> CheckResult:
    # describe-secret, not get-secret-value: the evidence must not carry the password.
    meta = stack.aws.client("secretsmanager").describe_secret(SecretId=stack.resources.db_secret_id)
    return CheckResult(
        CheckStatus.PASS, f"secretsmanager describe-secret {meta.get('Name')}: exists (value not read into the report)"
    )


def loopback_only(stack: StackEndpoints) -> CheckResult:
    hosts = {
        "proxy": stack.proxy.host,
        "direct": stack.direct.host,
        "redis": stack.redis.host,
    }
    outside = {name: host for name, host in hosts.items() if not _is_loopback(host)}
    where = ", ".join(f"{name} {host}" for name, host in hosts.items())
    if outside:
        return CheckResult(
            CheckStatus.NOT_EMULATED,
            f"a deployed unit ({where}): its security groups are AWS's; the harness does not read them yet",
        )
    return CheckResult(
        CheckStatus.NOT_EMULATED,
        f"no security groups locally; what stands in for them holds: every endpoint is on loopback ({where})",
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


PROBES: dict[str, Probe] = {
    "live.proxy_connect": proxy_connect,
    "live.pgvector": pgvector,
    "live.kms_key": kms_key,
    "live.db_secret": db_secret,
    "live.loopback_only": loopback_only,
    "live.automated_backups": backup_probes.automated_backups,
    "live.backup_schedule": backup_probes.backup_schedule,
    "live.backup_retention": backup_probes.retention,
    "live.manual_snapshot": backup_probes.manual_snapshot,
}


def run_probes(stack: StackEndpoints) -> dict[str, dict[str, str]]:
    """Every probe's result as results-file facts; a probe that raises fails its item with the error."""
    recorded = {}
    for check_id, probe in PROBES.items():
        try:
            result = probe(stack)
        except Exception as exc:  # the item shows the failure; one dead service must not hide the others
            result = CheckResult(
                CheckStatus.FAIL, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
        recorded[check_id] = result.as_json()
    return recorded
