"""Connections and clients, created on first use in an execution environment and kept while it is warm.

Configuration comes from environment variables set at deployment (`harness deploy` sets them):
DB_SECRET_ID (Secrets Manager secret in RDS's JSON shape: host, port, username, password, dbname;
host is the RDS Proxy endpoint), DB_SCHEMA (default app), EXPORTS_BUCKET, REDIS_SECRET_ID (a secret
{host, port, password, tls, db}), EXPORT_URL_TTL_S (default 3600). boto3 takes its endpoint from
AWS_ENDPOINT_URL when that is set (an emulator), from the region otherwise.
DB_REQUEST_TIMEOUT_S (default 60): a round trip to the database unanswered this long fails the invocation
with a clear error, well inside the 300 s Lambda Timeout of the export and the deletion.
TLS: DB_SSLMODE (libpq's sslmode, default verify-full, as RDS Proxy with Require TLS needs) and CA_BUNDLE
(a PEM file in the deployment package, e.g. AWS's global-bundle.pem; `harness deploy` packs the local
stack's CA) against which both the proxy and Redis (when the secret says tls) are verified.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import boto3
import psycopg
import redis
from botocore.config import Config

# RDS Proxy (and PgBouncer) end idle client connections; a connection idle this long is pinged first.
_PING_AFTER_IDLE_S = 60.0
# A login refused during a rotation is retried this often, re-reading the secret each time (0.2 s, 0.4 s...).
_LOGIN_ATTEMPTS = 4
_LOGIN_BACKOFF_S = 0.2
# PostgreSQL says "password authentication failed"; PgBouncer (and RDS Proxy) "SASL authentication failed".
_LOGIN_REFUSED = re.compile(r"(password|SASL) authentication failed")

DEFAULT_REQUEST_TIMEOUT_S = "60"

_clients: dict[str, Any] = {}
_secrets: dict[str, dict[str, Any]] = {}
_db: psycopg.Connection[Any] | None = None
_db_used_at = 0.0
_redis: redis.Redis | None = None


class ConfigurationError(RuntimeError):
    """The function was deployed without a setting it needs; the message names it."""


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise ConfigurationError(
            f"environment variable {name} is not set: deploy the function with `harness deploy`, or set it in "
            "the function's configuration (see functions/README.md)"
        )
    return value


def client(service: str) -> Any:
    if service not in _clients:
        # SigV4 everywhere: presigned S3 URLs need it with KMS-encrypted objects and in newer regions.
        _clients[service] = boto3.client(service, config=Config(signature_version="s3v4", retries={"mode": "standard"}))
    return _clients[service]


def prepare(*services: str) -> None:
    """Build these AWS clients at import: INIT runs with boosted CPU and is not billed as the first request's
    duration, whereas botocore loading its service models at 128 MB's CPU share takes about a second."""
    for service in services:
        client(service)


def secret(secret_id: str) -> dict[str, Any]:
    if secret_id not in _secrets:
        sm = client("secretsmanager")
        try:
            raw = sm.get_secret_value(SecretId=secret_id)["SecretString"]
        except sm.exceptions.ResourceNotFoundException:
            raise ConfigurationError(
                f"secret {secret_id} does not exist: `harness deploy` writes the functions' secrets on a local "
                "stack; elsewhere create it or point the function's setting at an existing one"
            ) from None
        try:
            _secrets[secret_id] = dict(json.loads(raw))
        except (ValueError, TypeError):
            raise ConfigurationError(f"secret {secret_id} is not a JSON object") from None
    return _secrets[secret_id]


def schema() -> str:
    return setting("DB_SCHEMA", "app")


def ca_bundle() -> str | None:
    """The CA bundle's path inside the deployment package, or None to use the system's store."""
    name = os.environ.get("CA_BUNDLE")
    if not name:
        return None
    path = os.path.join(os.environ.get("LAMBDA_TASK_ROOT", os.getcwd()), name)
    if not os.path.isfile(path):
        raise ConfigurationError(f"CA_BUNDLE names {name}, which is not in the deployment package")
    return path


def _tls_params() -> dict[str, str]:
    params = {"sslmode": os.environ.get("DB_SSLMODE") or "verify-full"}
    bundle = ca_bundle()
    if bundle:
        params["sslrootcert"] = bundle
    return params


def request_timeout_s() -> float:
    text = setting("DB_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S)
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConfigurationError(f"DB_REQUEST_TIMEOUT_S is {text!r}: give a positive number of seconds, such as 60")
    return value


def bounded_connection_class(timeout_s: float) -> type[psycopg.Connection[Any]]:
    """A psycopg Connection whose every round trip fails after `timeout_s` without an answer.

    A connection the function already holds is otherwise bounded only by the Lambda Timeout: the server's
    statement_timeout cannot end a request whose bytes never reach it, and TCP timeouts never fire while a
    proxy (RDS Proxy) ACKs the bytes itself. On expiry the connection is closed, so the next use reconnects.
    (The harness's own clients do the same in harness/endpoints.py; this package is deployed without it.)"""

    class BoundedConnection(psycopg.Connection[Any]):
        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(gen, interval=interval, timeout=timeout or timeout_s)
            except psycopg.errors._WaitTimeout:
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no answer from the database within {timeout_s:g} s (DB_REQUEST_TIMEOUT_S): connection closed"
                ) from None

    return BoundedConnection


def _connect_once() -> psycopg.Connection[Any]:
    creds = secret(setting("DB_SECRET_ID"))
    try:
        return bounded_connection_class(request_timeout_s()).connect(
            host=creds["host"],
            port=int(creds["port"]),
            user=creds["username"],
            password=creds["password"],
            dbname=creds.get("dbname") or creds["username"],
            autocommit=True,
            # The proxy multiplexes transactions over server connections: a statement prepared on one
            # backend would not exist on the next, so psycopg must never prepare.
            prepare_threshold=None,
            connect_timeout=10,
            application_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "gdpr-lambda"),
            **_tls_params(),
        )
    except KeyError as exc:
        raise ConfigurationError(f"DB secret lacks {exc}: it must hold host, port, username, password") from None


def _connect() -> psycopg.Connection[Any]:
    """Log in with the secret; a refused password means a rotation moved it: re-read the secret and retry
    (Secrets Manager's single-user rotation changes the password a moment before AWSCURRENT follows)."""
    for attempt in range(_LOGIN_ATTEMPTS):
        try:
            return _connect_once()
        except psycopg.OperationalError as exc:
            _secrets.pop(setting("DB_SECRET_ID"), None)
            if not _LOGIN_REFUSED.search(str(exc)) or attempt == _LOGIN_ATTEMPTS - 1:
                raise
            time.sleep(_LOGIN_BACKOFF_S * (attempt + 1))
    raise AssertionError("unreachable")


def db() -> psycopg.Connection[Any]:
    """The environment's connection through the proxy, reconnected if it was closed or went stale."""
    global _db, _db_used_at
    if _db is not None and not _db.closed and not _db.broken and time.monotonic() - _db_used_at > _PING_AFTER_IDLE_S:
        try:
            _db.execute("SELECT 1")
        except psycopg.OperationalError:
            _db.close()
    if _db is None or _db.closed or _db.broken:
        _db = _connect()
    _db_used_at = time.monotonic()
    return _db


def cache() -> redis.Redis:
    global _redis
    if _redis is None:
        creds = secret(setting("REDIS_SECRET_ID"))
        tls = bool(creds.get("tls", False))
        verify: dict[str, Any] = (
            {"ssl_cert_reqs": "required", "ssl_check_hostname": True, "ssl_ca_certs": ca_bundle()} if tls else {}
        )
        _redis = redis.Redis(
            host=creds["host"],
            port=int(creds["port"]),
            password=creds.get("password") or None,
            ssl=tls,
            db=int(creds.get("db", 0)),
            socket_timeout=10,
            socket_connect_timeout=5,
            **verify,
        )
    return _redis
