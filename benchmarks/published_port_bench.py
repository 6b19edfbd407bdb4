"""What the compose backend's published ports cost a client: the same servers reached through 127.0.0.1:<port>
(the engine's port publishing, docker-proxy on a Linux engine, the VM's forwarder on Docker Desktop) and
directly at each container's address on the compose network (possible from a Linux host only).

The parity table in README compares the embedded and compose sign-offs; the compose figures include this
hop on every request, and the proxy's acquire time includes it once more per connection. Both paths reach
the very same server process, so the difference is the hop alone. Samples alternate between the two paths
so a neighbour's load hits both alike. TLS is verified against the unit's CA on both paths; the host name is
not checked on either (the certificate names 127.0.0.1, not the container's address).

    .venv/bin/harness up --backend compose
    .venv/bin/python benchmarks/published_port_bench.py [--count 400] [--seconds 60]

Every loop is bounded by --count and --seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import docker  # type: ignore[import-untyped]
import psycopg
import redis

from harness.backends import get_backend
from harness.config import resolve_settings
from harness.endpoints import PostgresEndpoint, RedisEndpoint, StackEndpoints

# The services' ports inside their containers (harness/backends/compose_spec.py publishes them).
CONTAINER_PORTS = {"postgres": 5432, "pgbouncer": 6432, "redis": 6379}


def container_addresses(project: str) -> dict[str, str]:
    """Each compose service's address on the project's network, from the engine."""
    client = docker.from_env()
    try:
        found: dict[str, str] = {}
        for container in client.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
            service = container.labels.get("com.docker.compose.service", "")
            networks = container.attrs["NetworkSettings"]["Networks"]
            address = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
            if service in CONTAINER_PORTS and address:
                found[service] = address
        return found
    finally:
        client.close()


def postgres_at(endpoint: PostgresEndpoint, host: str, port: int) -> PostgresEndpoint:
    # verify-ca keeps the certificate check on both paths; the container's address is not in its names.
    sslmode = "verify-ca" if endpoint.sslmode == "verify-full" else endpoint.sslmode
    return dataclasses.replace(endpoint, host=host, port=port, sslmode=sslmode)


def open_connection(endpoint: PostgresEndpoint) -> psycopg.Connection[Any]:
    # Transaction pooling: a server-side prepared statement would meet another client's connection.
    return psycopg.connect(**endpoint.conninfo_kwargs(), autocommit=True, prepare_threshold=None)


def select_one(connection: psycopg.Connection[Any]) -> None:
    connection.execute("SELECT 1").fetchone()


def connect_once(endpoint: PostgresEndpoint) -> None:
    with open_connection(endpoint) as connection:
        select_one(connection)


def redis_client(endpoint: RedisEndpoint, host: str, port: int) -> redis.Redis:
    options: dict[str, Any] = {}
    if endpoint.tls:
        options = {"ssl": True, "ssl_ca_certs": endpoint.ca_file, "ssl_check_hostname": False}
    return redis.Redis(host=host, port=port, password=endpoint.password.reveal(), socket_timeout=10, **options)


def alternate(paths: dict[str, Callable[[], object]], count: int, deadline: float) -> dict[str, list[float]]:
    """Milliseconds per call of each path, calls interleaved, until `count` each or the deadline."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        for name, call in paths.items():
            began = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - began) * 1000)
    return samples


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def report(what: str, samples: dict[str, list[float]]) -> None:
    published, direct = samples["published"], samples["container"]
    p50 = (quantile(published, 0.5), quantile(direct, 0.5))
    p95 = (quantile(published, 0.95), quantile(direct, 0.95))
    print(
        f"{what:<34} N={len(published):<5} published p50 {p50[0]:7.3f} ms p95 {p95[0]:7.3f} ms | "
        f"container p50 {p50[1]:7.3f} ms p95 {p95[1]:7.3f} ms | hop p50 {p50[0] - p50[1]:+.3f} ms "
        f"(x{p50[0] / p50[1]:.2f})"
    )


def run(stack: StackEndpoints, count: int, seconds: float) -> None:
    addresses = container_addresses(str(stack.facts["project"]))
    missing = sorted(set(CONTAINER_PORTS) - set(addresses))
    if missing:
        sys.exit(f"no address on the compose network for {', '.join(missing)}: is the stack up?")
    deadline = time.monotonic() + seconds
    targets = {
        "postgres (direct)": (stack.direct, "postgres"),
        "proxy (PgBouncer)": (stack.proxy, "pgbouncer"),
    }
    for what, (endpoint, service) in targets.items():
        ends = {
            "published": postgres_at(endpoint, endpoint.host, endpoint.port),
            "container": postgres_at(endpoint, addresses[service], CONTAINER_PORTS[service]),
        }
        connections = {name: open_connection(e) for name, e in ends.items()}
        try:
            report(
                f"{what}: SELECT 1",
                alternate(
                    {name: functools.partial(select_one, c) for name, c in connections.items()},
                    count,
                    deadline,
                ),
            )
        finally:
            for connection in connections.values():
                connection.close()

        report(
            f"{what}: connect + SELECT 1",
            alternate({name: functools.partial(connect_once, e) for name, e in ends.items()}, count // 4, deadline),
        )
    clients = {
        "published": redis_client(stack.redis, stack.redis.host, stack.redis.port),
        "container": redis_client(stack.redis, addresses["redis"], CONTAINER_PORTS["redis"]),
    }
    try:
        report("redis: PING", alternate({name: c.ping for name, c in clients.items()}, count, deadline))
    finally:
        for client in clients.values():
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400, help="requests per path (default 400)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    args = parser.parse_args()
    settings = resolve_settings({"backend": "compose"})
    stack = get_backend(settings).endpoints()
    if stack is None:
        sys.exit("no compose stack is running: start it with `harness up --backend compose`")
    run(stack, args.count, args.seconds)


if __name__ == "__main__":
    main()
