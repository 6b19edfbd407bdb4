"""The security items of the document's post-deployment checklist, checked against a running unit.

Each check returns PASS, FAIL, NOT EMULATED (the local unit cannot behave like AWS here; the evidence says
why and what AWS property the real check reads) or ERROR (it could not be checked: never a pass). The
evidence is what a reviewer needs to believe the status; it never holds a secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from harness.data.app_role import AppRoleError, app_endpoint
from harness.endpoints import StackEndpoints
from harness.paths import FUNCTIONS_DIR
from harness.security.iam import lint_policies
from harness.services.certificates import make_ca, write_ca_bundle
from harness.services.process import PidFiles
from harness.services.redis import ELASTICACHE_RESTRICTED_COMMANDS

PASS, FAIL, NOT_EMULATED, ERROR = "PASS", "FAIL", "NOT EMULATED", "ERROR"
IN_TRANSIT = "Encryption in transit verified"
AT_REST = "Encryption at rest verified"
SECURITY_GROUPS = "Security group rules tested"
IAM = "IAM permissions validated"
CHECKLIST = (IN_TRANSIT, AT_REST, SECURITY_GROUPS, IAM)
# What the application role may do, table by table (fixtures/sql/100_constraints_and_grants.sql): personal
# data read and written, the audit log appended to and read, bookkeeping read. Anything else is a finding.
APP_PRIVILEGES: dict[str, frozenset[str]] = {
    **{
        t: frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
        for t in ("users", "profiles", "consents", "events", "documents", "gdpr_requests")
    },
    "audit_log": frozenset({"SELECT", "INSERT"}),
    "schema_migrations": frozenset({"SELECT"}),
    "seed_state": frozenset({"SELECT"}),
}
MAX_OBJECTS_CHECKED = 500
# The unit's secrets: the master's, the application role's and Redis's (harness.app.gdpr_deploy names them).
UNIT_SECRET_PREFIXES = ("dbunit/rds/", "dbunit/elasticache/")


@dataclass(frozen=True)
class SecurityFinding:
    item: str
    check: str
    status: str
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SecurityContext:
    stack: StackEndpoints
    state_dir: Path
    schema: str = "app"


Check = Callable[[SecurityContext], SecurityFinding]


def _refused(call: Callable[[], Any]) -> str | None:
    """The error a call raised, or None if it succeeded (closing whatever it opened)."""
    try:
        opened = call()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    close = getattr(opened, "close", None)
    if close is not None:
        close()
    return None


def proxy_requires_tls(ctx: SecurityContext) -> SecurityFinding:
    name = "the proxy requires TLS and verifies against the unit's CA"
    proxy = ctx.stack.proxy
    if proxy.sslmode != "verify-full":
        return SecurityFinding(IN_TRANSIT, name, FAIL, f"the proxy endpoint's sslmode is {proxy.sslmode or 'unset'}")
    with proxy.connect(autocommit=True, prepare_threshold=None, connect_timeout=10) as conn:
        encrypted = conn.pgconn.ssl_in_use
    plain = _refused(lambda: dataclasses.replace(proxy, sslmode="disable", sslrootcert="").connect(connect_timeout=10))
    with tempfile.TemporaryDirectory() as tmp:
        stranger = str(write_ca_bundle(Path(tmp), make_ca("not the unit's CA")[1]))
        wrong_ca = _refused(lambda: dataclasses.replace(proxy, sslrootcert=stranger).connect(connect_timeout=10))
    ok = encrypted and plain is not None and wrong_ca is not None
    evidence = (
        f"verify-full connection encrypted: {encrypted}; plain client: {plain or 'ACCEPTED'}; "
        f"client trusting another CA: {wrong_ca or 'ACCEPTED'}"
    )
    return SecurityFinding(IN_TRANSIT, name, PASS if ok else FAIL, evidence)


def redis_requires_tls(ctx: SecurityContext) -> SecurityFinding:
    name = "Redis speaks only TLS (ElastiCache in-transit encryption)"
    endpoint = ctx.stack.redis
    if not endpoint.tls:
        return SecurityFinding(IN_TRANSIT, name, FAIL, "the Redis endpoint is plain (tls is not required)")
    client = endpoint.client()
    try:
        answered = bool(client.ping())
    finally:
        client.close()
    plain = _refused(lambda: dataclasses.replace(endpoint, tls=False, ca_file="").client(socket_timeout=5).ping())
    ok = answered and plain is not None
    return SecurityFinding(
        IN_TRANSIT, name, PASS if ok else FAIL, f"TLS PING: {answered}; plain client: {plain or 'ACCEPTED'}"
    )


def direct_endpoint_tls(ctx: SecurityContext) -> SecurityFinding:
    """PASS when a plain client is refused. A stack the harness started states in its TLS facts when its direct
    endpoint is plain by construction (both local backends run a PostgreSQL build without OpenSSL): then the
    check is NOT EMULATED, with that statement and what the plain client saw; anywhere else a plain login is a
    FAIL."""
    name = "the database's own endpoint requires TLS (rds.force_ssl = 1)"
    direct = ctx.stack.direct
    plain = _refused(lambda: dataclasses.replace(direct, sslmode="disable").connect(connect_timeout=10))
    if plain:
        return SecurityFinding(IN_TRANSIT, name, PASS, f"plain client: {plain}")
    stated = str((ctx.stack.facts.get("tls") or {}).get("direct", ""))
    if ctx.stack.backend != "external" and stated.endswith(NOT_EMULATED):
        return SecurityFinding(
            IN_TRANSIT,
            name,
            NOT_EMULATED,
            f"the {ctx.stack.backend} stack's direct endpoint is {stated.removesuffix(NOT_EMULATED).rstrip(': ')}; "
            f"a plain client was accepted at {direct.host}:{direct.port}; on RDS check the parameter group's "
            "rds.force_ssl (1 by default from PostgreSQL 15)",
        )
    return SecurityFinding(IN_TRANSIT, name, FAIL, "plain client: ACCEPTED")


def exports_bucket_encrypted(ctx: SecurityContext) -> SecurityFinding:
    name = "the exports bucket encrypts with the unit's KMS key by default, and its objects carry SSE-KMS"
    s3 = ctx.stack.aws.client("s3")
    bucket, key_id = ctx.stack.resources.exports_bucket, ctx.stack.resources.kms_key_id
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]
    default_ok = any(
        d.get("SSEAlgorithm") == "aws:kms" and key_id in str(d.get("KMSMasterKeyID", "")) for d in defaults
    )
    probe = f"security-check/{uuid.uuid4()}"
    s3.put_object(Bucket=bucket, Key=probe, Body=b"probe")
    try:
        head = s3.head_object(Bucket=bucket, Key=probe)
    finally:
        s3.delete_object(Bucket=bucket, Key=probe)
    probe_ok = head.get("ServerSideEncryption") == "aws:kms" and key_id in str(head.get("SSEKMSKeyId", ""))
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="exports/", MaxKeys=MAX_OBJECTS_CHECKED).get("Contents", [])
    unencrypted = [
        o["Key"] for o in listed if s3.head_object(Bucket=bucket, Key=o["Key"]).get("ServerSideEncryption") != "aws:kms"
    ]
    ok = default_ok and probe_ok and not unencrypted
    evidence = (
        f"default encryption aws:kms with the unit key: {default_ok}; an object put without asking: "
        f"{head.get('ServerSideEncryption')}; export objects checked: {len(listed)}, without SSE-KMS: "
        f"{len(unencrypted)}{' (' + ', '.join(unencrypted[:3]) + ')' if unencrypted else ''}"
    )
    return SecurityFinding(AT_REST, name, PASS if ok else FAIL, evidence)


def unencrypted_puts_refused(ctx: SecurityContext) -> SecurityFinding:
    name = "the exports bucket refuses puts that do not ask for SSE-KMS"
    s3 = ctx.stack.aws.client("s3")
    bucket = ctx.stack.resources.exports_bucket
    has_policy = "DenyNonKmsPuts" in s3.get_bucket_policy(Bucket=bucket).get("Policy", "")
    probe = f"security-check/{uuid.uuid4()}"
    refused = _refused(lambda: s3.put_object(Bucket=bucket, Key=probe, Body=b"x", ServerSideEncryption="AES256"))
    if refused is not None:
        return SecurityFinding(
            AT_REST, name, PASS if has_policy else FAIL, f"policy present: {has_policy}; put: {refused}"
        )
    s3.delete_object(Bucket=bucket, Key=probe)
    if ctx.stack.backend == "external":
        return SecurityFinding(
            AT_REST, name, FAIL, f"an SSE-S3 (AES256) put was accepted; policy present: {has_policy}"
        )
    return SecurityFinding(
        AT_REST,
        name,
        NOT_EMULATED,
        f"the bucket policy is in place ({has_policy}) but the emulator does not enforce bucket policies: an "
        "AES256 put was accepted (and deleted). Objects are checked after the fact instead (previous check).",
    )


def secrets_encrypted_with_the_key(ctx: SecurityContext) -> SecurityFinding:
    name = "the database secrets are encrypted with the unit's KMS key"
    sm = ctx.stack.aws.client("secretsmanager")
    key_id = ctx.stack.resources.kms_key_id
    found = {}
    for secret in sm.list_secrets().get("SecretList", []):
        if secret["Name"].startswith(UNIT_SECRET_PREFIXES):
            # list_secrets may leave KmsKeyId out; describe_secret states it.
            found[secret["Name"]] = str(sm.describe_secret(SecretId=secret["ARN"]).get("KmsKeyId", ""))
    wrong = sorted(n for n, k in found.items() if not key_id or key_id not in k)
    if ctx.stack.resources.db_secret_id not in found:
        return SecurityFinding(AT_REST, name, FAIL, f"secret {ctx.stack.resources.db_secret_id} not found")
    evidence = f"secrets: {', '.join(sorted(found))}; not under the unit key: {', '.join(wrong) or 'none'}"
    return SecurityFinding(AT_REST, name, FAIL if wrong else PASS, evidence)


def database_storage_encrypted(ctx: SecurityContext) -> SecurityFinding:
    return SecurityFinding(
        AT_REST,
        "the database's storage is encrypted",
        NOT_EMULATED,
        "the local data directory is not encrypted; on AWS the check reads the instance's StorageEncrypted "
        "(and KmsKeyId) from rds:DescribeDBInstances",
    )


def listeners_on_loopback(ctx: SecurityContext) -> SecurityFinding:
    name = "every listener of the unit binds to loopback only (the security groups' stand-in)"
    if ctx.stack.backend != "embedded":
        return SecurityFinding(
            SECURITY_GROUPS,
            name,
            NOT_EMULATED,
            f"the {ctx.stack.backend} backend's listeners are not the harness's processes; "
            "on AWS review the security groups' ingress rules",
        )
    records = PidFiles(ctx.state_dir / "run").all()
    listening: list[str] = []
    exposed: list[str] = []
    for record in records:
        proc = record.process()
        if proc is None:
            continue
        for p in [proc, *proc.children(recursive=True)]:
            try:
                conns = p.net_connections(kind="inet")
            except psutil.Error:
                continue
            for c in conns:
                if c.status != psutil.CONN_LISTEN:
                    continue
                where = f"{record.name}:{c.laddr.ip}:{c.laddr.port}"
                listening.append(where)
                if not ipaddress.ip_address(c.laddr.ip).is_loopback:
                    exposed.append(where)
    if not listening:
        return SecurityFinding(SECURITY_GROUPS, name, ERROR, "no listening socket found for the stack's processes")
    status = FAIL if exposed else PASS
    return SecurityFinding(
        SECURITY_GROUPS, name, status, f"listeners: {', '.join(sorted(set(listening)))}; exposed: {exposed}"
    )


def redis_access(ctx: SecurityContext) -> SecurityFinding:
    name = "Redis refuses clients without the password and the commands ElastiCache restricts"
    anonymous = _refused(lambda: ctx.stack.redis.client(password=None).get("security-check"))
    client = ctx.stack.redis.client()
    try:
        served = {n.decode().upper() if isinstance(n, bytes) else str(n).upper() for n in client.command_list()}
    finally:
        client.close()
    still = sorted(set(ELASTICACHE_RESTRICTED_COMMANDS) & served)
    ok = anonymous is not None and not still
    evidence = (
        f"client without password: {anonymous or 'ACCEPTED'}; restricted commands still served: {still or 'none'}"
    )
    return SecurityFinding(SECURITY_GROUPS, name, PASS if ok else FAIL, evidence)


def _privileges(conn: psycopg.Connection[Any], role: str, schema: str) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = %s AND table_schema = %s",
        (role, schema),
    ).fetchall()
    granted: dict[str, set[str]] = {}
    for table, privilege in rows:
        granted.setdefault(table, set()).add(privilege)
    return granted


def app_role_privileges(ctx: SecurityContext) -> SecurityFinding:
    name = "the application role has exactly its listed privileges, no DDL, and cannot change the audit log"
    try:
        endpoint = app_endpoint(ctx.stack, ctx.state_dir)
    except AppRoleError as exc:
        return SecurityFinding(IAM, name, ERROR, str(exc))
    with ctx.stack.direct.connect(autocommit=True) as admin:
        granted = _privileges(admin, endpoint.user, ctx.schema)
        attributes = admin.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = %s",
            (endpoint.user,),
        ).fetchone()
        owns = admin.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = %s",
            (endpoint.user,),
        ).fetchone()
    if attributes is None:
        return SecurityFinding(IAM, name, ERROR, f"role {endpoint.user} does not exist: run `harness seed`")
    problems = [
        f"{t}: {sorted(granted.get(t, set()) ^ set(v))}"
        for t, v in APP_PRIVILEGES.items()
        if granted.get(t, set()) != set(v)
    ]
    problems += [f"{t}: unexpected {sorted(v)}" for t, v in granted.items() if t not in APP_PRIVILEGES]
    if any(attributes):
        problems.append("role attributes superuser/createrole/createdb/bypassrls: " + str(attributes))
    if owns and owns[0]:
        problems.append(f"owns {owns[0]} relations (owners may run DDL on them)")
    # Behaviour, not only the catalogue: as the role, through the proxy, in a transaction rolled back.
    attempts = {
        "UPDATE audit_log": f"UPDATE {ctx.schema}.audit_log SET action = action",
        "DELETE FROM audit_log": f"DELETE FROM {ctx.schema}.audit_log",
        "TRUNCATE audit_log": f"TRUNCATE {ctx.schema}.audit_log",
        "CREATE TABLE": f"CREATE TABLE {ctx.schema}.security_check_probe (id int)",
        "DROP TABLE users": f"DROP TABLE {ctx.schema}.users",
    }
    refused = {}
    with endpoint.connect(prepare_threshold=None) as conn:
        for label, statement in attempts.items():
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                refused[label] = True
            else:
                refused[label] = False
    allowed = [label for label, was_refused in refused.items() if not was_refused]
    problems += [f"{label} was allowed" for label in allowed]
    evidence = (
        f"role {endpoint.user}: {len(APP_PRIVILEGES)} tables checked against the listed grants; "
        f"refused as the role: {', '.join(k for k, v in refused.items() if v)}"
        + (f"; problems: {'; '.join(problems)}" if problems else "")
    )
    return SecurityFinding(IAM, name, FAIL if problems else PASS, evidence)


def lambda_policies(ctx: SecurityContext) -> SecurityFinding:
    name = "the Lambda execution roles name their actions and resources (no wildcards, nothing unused)"
    directory = FUNCTIONS_DIR / "policies"
    findings = lint_policies(directory)
    evidence = f"{directory}: " + ("; ".join(map(str, findings)) if findings else "3 policies, no finding")
    return SecurityFinding(IAM, name, FAIL if findings else PASS, evidence)


# (checklist item, check): the item is known before the check runs, so a check that raises is still filed.
CHECKS: tuple[tuple[str, Check], ...] = (
    (IN_TRANSIT, proxy_requires_tls),
    (IN_TRANSIT, redis_requires_tls),
    (IN_TRANSIT, direct_endpoint_tls),
    (AT_REST, exports_bucket_encrypted),
    (AT_REST, unencrypted_puts_refused),
    (AT_REST, secrets_encrypted_with_the_key),
    (AT_REST, database_storage_encrypted),
    (SECURITY_GROUPS, listeners_on_loopback),
    (SECURITY_GROUPS, redis_access),
    (IAM, app_role_privileges),
    (IAM, lambda_policies),
)


def run_checks(ctx: SecurityContext, checks: tuple[tuple[str, Check], ...] = CHECKS) -> list[SecurityFinding]:
    """Every check, each isolated: one that raises is an ERROR with the exception as evidence, never a pass."""
    findings = []
    for item, check in checks:
        try:
            findings.append(check(ctx))
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            findings.append(
                SecurityFinding(item, check.__name__.replace("_", " "), ERROR, f"{type(exc).__name__}: {detail}")
            )
    return findings


def verdict(findings: list[SecurityFinding]) -> str:
    statuses = {f.status for f in findings}
    if ERROR in statuses:
        return ERROR
    return FAIL if FAIL in statuses else PASS
