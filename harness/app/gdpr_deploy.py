"""The GDPR functions as deployable Lambda zips, the secrets they read, and their deployment.

Packaging: each function's folder under functions/ plus the shared package functions/common/gdpr_common,
zipped with fixed timestamps so the same source gives the same CodeSha256 (an unchanged function is not
re-uploaded). Dependencies (psycopg, redis, boto3) are not in the zip: the local runtime provides the
harness's own; on AWS attach a layer with psycopg[binary] and redis (boto3 is in the Python runtime).

Apart from invoking them (gdpr_invoke.py): `harness deploy` and the scenarios' set-up package and deploy,
while Locust users and measurements only invoke what is already there.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.app.gdpr_invoke import lambda_client
from harness.config import UnitValues, shipped_unit
from harness.endpoints import AwsEndpoint, RedisEndpoint, StackEndpoints
from harness.paths import FUNCTIONS_DIR

COMMON_PACKAGE = "gdpr_common"
RUNTIME = "python3.12"
HANDLER = "app.handler"
# Accepted by the emulators; a real account needs the ARN of a role allowed to read the secrets,
# write the bucket and reach the VPC (pass --role-arn).
DEFAULT_ROLE_ARN = "arn:aws:iam::000000000000:role/dbunit-gdpr-lambda"
APP_DB_SECRET_ID = "dbunit/rds/app"
REDIS_SECRET_ID = "dbunit/elasticache/auth"
# The CA bundle the functions verify the proxy and Redis against travels in the zip, as AWS's RDS
# global-bundle.pem does: a function never depends on a file of the machine it runs on.
CA_BUNDLE_NAME = "ca-bundle.pem"
_TLS = ("DB_SSLMODE", "CA_BUNDLE")
# Which settings each function gets: no function holds a secret it does not use.
_NEEDS: dict[str, tuple[str, ...]] = {
    "data_export": ("DB_SECRET_ID", "DB_SCHEMA", "EXPORTS_BUCKET", "EXPORT_URL_TTL_S", "EXPORTS_KMS_KEY_ID", *_TLS),
    "data_deletion": ("DB_SECRET_ID", "DB_SCHEMA", "EXPORTS_BUCKET", "REDIS_SECRET_ID", *_TLS),
    "audit_logging": ("DB_SECRET_ID", "DB_SCHEMA", *_TLS),
}
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class DeployError(RuntimeError):
    """The functions could not be packaged or deployed; the message says what to do."""


@dataclass(frozen=True)
class FunctionDefinition:
    name: str
    memory_mb: int
    timeout_s: int
    source_dir: Path


def definitions(names: Sequence[str] | None = None, unit: UnitValues | None = None) -> list[FunctionDefinition]:
    """Memory sizes and timeouts from the unit spec (fixtures/unit.yaml's lambda.<name>.memory_mb/timeout_s):
    timeouts above the duration critical (250 s) where the duration grows with a user's data, so a slow run
    is measured as slow rather than cut off as an error."""
    unit = unit or shipped_unit()
    known = {
        name: FunctionDefinition(name, memory, unit.lambda_timeouts_s[name], FUNCTIONS_DIR / name)
        for name, memory in unit.lambda_memory_mb.items()
    }
    chosen = list(names) if names else list(known)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise DeployError(f"unknown function(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in chosen]


def _add_tree(archive: zipfile.ZipFile, root: Path, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        info = zipfile.ZipInfo(prefix + path.relative_to(root).as_posix(), date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, path.read_bytes())


def package(definition: FunctionDefinition, ca_bundle: bytes | None = None) -> bytes:
    """The deployment zip: app.py at the root, the shared package beside it, and the CA bundle if given."""
    common = FUNCTIONS_DIR / "common" / COMMON_PACKAGE
    for required in (definition.source_dir / "app.py", common / "__init__.py"):
        if not required.is_file():
            raise DeployError(f"{required} is missing: the functions/ folder of the repository is incomplete")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add_tree(archive, definition.source_dir, "")
        _add_tree(archive, common, f"{COMMON_PACKAGE}/")
        if ca_bundle is not None:
            info = zipfile.ZipInfo(CA_BUNDLE_NAME, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, ca_bundle)
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """The CodeSha256 Lambda reports: base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def _put_secret(aws: AwsEndpoint, secret_id: str, document: dict[str, Any], kms_key_id: str = "") -> None:
    sm = aws.client("secretsmanager")
    text = json.dumps(document)
    try:
        sm.put_secret_value(SecretId=secret_id, SecretString=text)
    except sm.exceptions.ResourceNotFoundException:
        # Encrypted with the unit's key, not the account's default aws/secretsmanager key.
        key = {"KmsKeyId": kms_key_id} if kms_key_id else {}
        sm.create_secret(Name=secret_id, SecretString=text, **key)


def ensure_stack_secrets(stack: StackEndpoints, state_dir: Path) -> tuple[str, str]:
    """Write the functions' secrets for a local stack: the application role through the proxy, and Redis.

    The functions log in as the seed's application role (it may append to audit_log but not change it),
    not as the master user the stack's own secret holds.
    """
    from harness.data.app_role import AppRoleError, app_credentials

    try:
        role, password = app_credentials(stack, state_dir, create=False)
    except AppRoleError as exc:
        raise DeployError(f"{exc}; the functions log in as the application role the seed creates") from None
    _put_secret(
        stack.aws,
        APP_DB_SECRET_ID,
        {
            "engine": "postgres",
            "host": stack.proxy.host,
            "port": stack.proxy.port,
            "username": role,
            "password": password.reveal(),
            "dbname": stack.proxy.dbname,
        },
        stack.resources.kms_key_id,
    )
    _put_secret(stack.aws, REDIS_SECRET_ID, redis_secret_document(stack.redis), stack.resources.kms_key_id)
    return APP_DB_SECRET_ID, REDIS_SECRET_ID


@dataclass(frozen=True)
class DeployResult:
    name: str
    action: str  # "created", "updated", "unchanged"
    memory_mb: int
    timeout_s: int
    code_sha256: str


def deploy(
    lambda_client: Any,
    *,
    db_secret_id: str,
    redis_secret_id: str,
    exports_bucket: str,
    names: Sequence[str] | None = None,
    name_prefix: str = "",
    role_arn: str = DEFAULT_ROLE_ARN,
    schema: str = "app",
    db_sslmode: str = "verify-full",
    ca_bundle: bytes | None = None,
    exports_kms_key_id: str = "",
    unit: UnitValues | None = None,
) -> list[DeployResult]:
    """Create or update each function on the Lambda endpoint `lambda_client` talks to.

    `db_sslmode` is libpq's sslmode towards the proxy (verify-full unless the stack runs without TLS);
    `ca_bundle` (PEM) is packed into each zip and named by CA_BUNDLE; `exports_kms_key_id` is the KMS key
    data_export encrypts exports with (empty: the bucket's default key).
    """
    settings = {
        "DB_SECRET_ID": db_secret_id,
        "DB_SCHEMA": schema,
        "EXPORTS_BUCKET": exports_bucket,
        "REDIS_SECRET_ID": redis_secret_id,
        "EXPORT_URL_TTL_S": "3600",
        "DB_SSLMODE": db_sslmode,
        "CA_BUNDLE": CA_BUNDLE_NAME if ca_bundle is not None else "",
        "EXPORTS_KMS_KEY_ID": exports_kms_key_id,
    }
    results = []
    for definition in definitions(names, unit):
        zip_bytes = package(definition, ca_bundle)
        sha = code_sha256(zip_bytes)
        name = name_prefix + definition.name
        config: dict[str, Any] = {
            "Runtime": RUNTIME,
            "Handler": HANDLER,
            "Role": role_arn,
            "MemorySize": definition.memory_mb,
            "Timeout": definition.timeout_s,
            "Environment": {"Variables": {k: settings[k] for k in _NEEDS[definition.name] if settings[k]}},
            "Description": f"GDPR {definition.name} (dbunit-harness)",
        }
        try:
            current = lambda_client.get_function_configuration(FunctionName=name)
        except lambda_client.exceptions.ResourceNotFoundException:
            current = None
        if current is None:
            lambda_client.create_function(FunctionName=name, Code={"ZipFile": zip_bytes}, Publish=False, **config)
            lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
            results.append(DeployResult(name, "created", definition.memory_mb, definition.timeout_s, sha))
            continue
        changed = False
        if current.get("CodeSha256") != sha:
            lambda_client.update_function_code(FunctionName=name, ZipFile=zip_bytes)
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
            changed = True
        if (
            any(current.get(key) != value for key, value in config.items() if key != "Environment")
            or current.get("Environment", {}).get("Variables", {}) != config["Environment"]["Variables"]
        ):
            lambda_client.update_function_configuration(FunctionName=name, **config)
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)
            changed = True
        action = "updated" if changed else "unchanged"
        results.append(DeployResult(name, action, definition.memory_mb, definition.timeout_s, sha))
    return results


def deploy_to_stack(
    stack: StackEndpoints,
    state_dir: Path,
    *,
    names: Sequence[str] | None = None,
    db_secret_id: str | None = None,
    redis_secret_id: str | None = None,
    role_arn: str = DEFAULT_ROLE_ARN,
    unit: UnitValues | None = None,
) -> list[DeployResult]:
    """Deploy the functions to the stack's Lambda endpoint. On a stack the harness owns, the secrets the
    functions read are written first; an external account must name its own."""
    if db_secret_id is None or redis_secret_id is None:
        if stack.backend == "external":
            raise DeployError(
                "the external backend needs --db-secret-id and --redis-secret-id: the harness "
                "does not write secrets into an account it does not own"
            )
        local_db, local_redis = ensure_stack_secrets(stack, state_dir)
        db_secret_id, redis_secret_id = db_secret_id or local_db, redis_secret_id or local_redis
    return deploy(
        lambda_client(stack.aws),
        db_secret_id=db_secret_id,
        redis_secret_id=redis_secret_id,
        exports_bucket=stack.resources.exports_bucket,
        names=names,
        role_arn=role_arn,
        unit=unit,
        **stack_options(stack),
    )


def stack_options(stack: StackEndpoints) -> dict[str, Any]:
    """deploy()'s arguments that follow from the stack: the proxy's sslmode, the CA bundle, the KMS key."""
    return {
        "db_sslmode": stack.proxy.sslmode or "prefer",
        "ca_bundle": _ca_bundle(stack),
        "exports_kms_key_id": stack.resources.kms_key_id,
    }


def redis_secret_document(redis: RedisEndpoint, db: int | None = None) -> dict[str, Any]:
    """The secret the functions read for ElastiCache: {host, port, password, tls, db}."""
    return {
        "host": redis.host,
        "port": redis.port,
        "password": redis.password.reveal(),
        "tls": redis.tls,
        "db": redis.db if db is None else db,
    }


def _ca_bundle(stack: StackEndpoints) -> bytes | None:
    paths = {Path(p) for p in (stack.proxy.sslrootcert, stack.redis.ca_file) if p}
    if len(paths) > 1:
        raise DeployError(f"the proxy and Redis name different CA bundles ({', '.join(map(str, paths))})")
    if not paths:
        return None
    path = paths.pop()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read the CA bundle {path} ({exc}); run `harness up` again") from None
