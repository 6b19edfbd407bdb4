"""Read-only probes of endpoints the harness did not start as processes (compose containers, a real
deployment), and the endpoint-file bookkeeping both of those backends share.

Each probe makes one real request and changes nothing, so `harness status` can be run against production.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from harness.backends.base import Reporter, ServiceStatus
from harness.endpoints import PostgresEndpoint, RedisEndpoint, StackEndpoints, endpoints_path, load_endpoints
from harness.services.pgbouncer_admin import ProxyAdminUnavailable, proxy_version
from harness.services.process import ServiceError

PROBE_TIMEOUT_S = 5


def aws_client_config() -> Any:
    from botocore.config import Config

    # botocore's defaults (60 s connect, several retries) would make a dead endpoint look like a hang.
    return Config(connect_timeout=PROBE_TIMEOUT_S, read_timeout=PROBE_TIMEOUT_S * 2, retries={"max_attempts": 1})


def _probe_postgres(endpoint: PostgresEndpoint) -> tuple[str, str]:
    with endpoint.connect(connect_timeout=PROBE_TIMEOUT_S, prepare_threshold=None) as conn:
        # BEGIN READ ONLY: whatever the probe runs cannot write.
        conn.read_only = True
        version, pgvector, max_connections, shared_buffers = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
            "current_setting('max_connections'), current_setting('shared_buffers')"
        ).fetchone()
    vector = f"pgvector {pgvector}" if pgvector else "no pgvector extension"
    return version, f"max_connections={max_connections} shared_buffers={shared_buffers} {vector}"


def _probe_proxy(endpoint: PostgresEndpoint) -> tuple[str, str]:
    with endpoint.connect(connect_timeout=PROBE_TIMEOUT_S, prepare_threshold=None) as conn:
        conn.read_only = True
        conn.execute("SELECT 1").fetchone()
    return "", "SELECT 1 answered through the proxy"


def _probe_redis(endpoint: RedisEndpoint) -> tuple[str, str]:
    client = endpoint.client(socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        client.ping()
        version = client.info("server")["redis_version"]
        # INFO, not CONFIG GET: ElastiCache disables the CONFIG command.
        memory = client.info("memory")
    finally:
        client.close()
    return str(version), f"maxmemory={memory.get('maxmemory')} {memory.get('maxmemory_policy')}"


def _probe_aws(endpoints: StackEndpoints) -> tuple[str, str]:
    config = aws_client_config()
    bucket, secret_id = endpoints.resources.exports_bucket, endpoints.resources.db_secret_id
    endpoints.aws.client("s3", config=config).head_bucket(Bucket=bucket)
    endpoints.aws.client("secretsmanager", config=config).describe_secret(SecretId=secret_id)
    return "", f"region {endpoints.aws.region}: bucket {bucket} and secret {secret_id} exist"


def _row(name: str, endpoint: str, probe: Callable[[], tuple[str, str]]) -> ServiceStatus:
    try:
        version, sizing = probe()
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return ServiceStatus(name, endpoint, False, detail=f"probe failed: {type(exc).__name__}: {first_line}")
    return ServiceStatus(name, endpoint, True, version=version, sizing=sizing)


def probe_stack(endpoints: StackEndpoints) -> list[ServiceStatus]:
    """One row per service, each from a real, read-only request; nothing is created or changed."""
    aws_endpoint = endpoints.aws.url or f"AWS ({endpoints.aws.region})"
    return [
        _row("postgres (direct)", endpoints.direct.url(), lambda: _probe_postgres(endpoints.direct)),
        _row("proxy", endpoints.proxy.url(), lambda: _probe_proxy(endpoints.proxy)),
        _row("redis", endpoints.redis.url(), lambda: _probe_redis(endpoints.redis)),
        _row("aws", aws_endpoint, lambda: _probe_aws(endpoints)),
    ]


def served_versions(endpoints: StackEndpoints, rows: list[ServiceStatus]) -> dict[str, Any]:
    """The Redis and PgBouncer versions the running servers report, merged into the endpoint facts a report
    states (`versions.*`), for a stack whose servers the harness did not start as processes."""
    facts: dict[str, Any] = {}
    redis = next((row.version for row in rows if row.name == "redis" and row.version), "")
    if redis:
        facts["redis"] = {**endpoints.facts.get("redis", {}), "version": redis}
    # The version is only stated: a console that does not answer leaves it out of the report.
    with contextlib.suppress(ProxyAdminUnavailable, psycopg.Error):
        facts["proxy"] = {**endpoints.facts.get("proxy", {}), "version": proxy_version(endpoints)}
    return facts


def refuse_foreign_stack(state_dir: Path, backend: str) -> None:
    """Stop a backend from overwriting the endpoint file of another backend's stack in the same state dir."""
    existing = load_endpoints(state_dir)
    if existing is not None and existing.backend != backend:
        raise ServiceError(
            f"{endpoints_path(state_dir)} belongs to the {existing.backend} stack; stop it with "
            f"`harness down --backend {existing.backend}`, or give the {backend} backend its own --state-dir"
        )


def forget_endpoints(state_dir: Path, backend: str, report: Reporter) -> None:
    """Remove the endpoint file if this backend wrote it."""
    path = endpoints_path(state_dir)
    if path.exists() and (existing := load_endpoints(state_dir)) is not None and existing.backend == backend:
        path.unlink()
        report(f"{backend}: removed {path}")
