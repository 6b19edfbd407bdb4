"""What TLS costs the unit's clients: connection set-up and request latency, TLS against plain, through the
proxy (PgBouncer, RDS Proxy's stand-in) and to Redis (ElastiCache's in-transit encryption).

Plain and TLS must be measured on the same server for the comparison to mean anything, and the stack's own
proxy and Redis refuse plain clients (tls = required). So the bench starts, beside the running stack, a
PgBouncer with TLS optional in front of the stack's PostgreSQL, and two Redis servers (one TLS, one plain)
configured like the stack's, on free loopback ports with the stack's certificate; it stops them by PID when
it ends, failed or not. Samples alternate TLS and plain so a neighbour's load hits both alike.

Connection set-up = connect (TCP, TLS handshake with certificate and host verification, authentication)
plus one trivial request, then close: what a Lambda pays on a cold start. Request latency = one request on
an open connection. Every loop is bounded by --count and --seconds.

    .venv/bin/python benchmarks/tls_bench.py [--count 300] [--seconds 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import socket
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.backends import get_backend
from harness.config import resolve_settings
from harness.endpoints import PostgresEndpoint, RedisEndpoint, Secret, StackEndpoints
from harness.services.certificates import tls_files
from harness.services.osuser import server_user
from harness.services.pgbouncer import PgBouncerService
from harness.services.process import PidFiles
from harness.services.redis import RedisService
from harness.sizing import unit_sizing

PAYLOAD_BYTES = 16 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def side_servers(
    stack: StackEndpoints, state_dir: Path
) -> Iterator[tuple[PostgresEndpoint, RedisEndpoint, RedisEndpoint]]:
    """A TLS-optional proxy and a TLS and a plain Redis, stopped when the block ends."""
    settings = resolve_settings()
    sizing = unit_sizing(settings.db_instance_class, settings.cache_node_type, settings.unit.lambda_memory_mb)
    files = tls_files(state_dir / "tls")
    if not files.key.is_file():
        raise SystemExit(f"no TLS certificate under {state_dir / 'tls'}: start the stack with tls = required")
    # Under the state directory, which the server account can already traverse (a mkdtemp under /tmp is 0700).
    work = state_dir / "bench-tls"
    shutil.rmtree(work, ignore_errors=True)
    user = server_user(settings.postgres_os_user)
    common = {"timeout_s": settings.startup_timeout_s, "user": user, "tls_files": files}
    proxy = PgBouncerService(
        conf_dir=work / "pgbouncer",
        log_path=work / "pgbouncer.log",
        port=free_port(),
        upstream_port=stack.direct.port,
        database=stack.direct.dbname,
        master_user=stack.direct.user,
        master_password=stack.direct.password,
        sizing=sizing.proxy,
        tls_mode="optional",
        pids=PidFiles(work / "run" / "pgbouncer"),
        **common,
    )
    # Two Redis servers share a record name, so each keeps its PID record in a directory of its own.
    redis_servers = [
        RedisService(
            work_dir=work / f"redis-{mode}",
            log_path=work / f"redis-{mode}.log",
            port=free_port(),
            password=Secret(stack.redis.password.reveal()),
            sizing=sizing.redis,
            tls_mode=mode,
            pids=PidFiles(work / "run" / f"redis-{mode}"),
            **common,
        )
        for mode in ("required", "off")
    ]
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, True)
        for service in (proxy, *redis_servers):
            cleanup.callback(service.stop)
            service.start()
        tls_redis, plain_redis = (r.endpoint() for r in redis_servers)
        yield proxy.endpoint(), tls_redis, plain_redis


def sample(calls: dict[str, Callable[[], object]], count: int, seconds: float) -> dict[str, list[float]]:
    """Milliseconds per call for each label, alternating labels, until count each or the time is up."""
    times: dict[str, list[float]] = {label: [] for label in calls}
    deadline = time.monotonic() + seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        for label, call in calls.items():
            began = time.perf_counter()
            call()
            times[label].append((time.perf_counter() - began) * 1000)
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_rows(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    base = statistics.median(times["plain"])
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:5}  n={len(values):5}  median {median:8.3f} ms  p95 {quantile(values, 0.95):8.3f} ms  "
            f"mean {statistics.fmean(values):8.3f} ms  x{median / base:5.2f} of plain"
        )


def pg_connect_once(endpoint: PostgresEndpoint) -> Callable[[], object]:
    def call() -> object:
        with endpoint.connect(autocommit=True, prepare_threshold=None, connect_timeout=10) as conn:
            return conn.execute("SELECT 1").fetchone()

    return call


def redis_connect_once(endpoint: RedisEndpoint) -> Callable[[], object]:
    def call() -> object:
        client = endpoint.client()
        try:
            return client.ping()
        finally:
            client.close()

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="samples per figure and mode (default 300)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound per figure (default 30)")
    args = parser.parse_args()
    settings = resolve_settings()
    stack = get_backend(settings).endpoints()
    if stack is None or stack.backend != "embedded":
        raise SystemExit("needs the embedded stack up: `harness up`")
    with side_servers(stack, settings.state_dir) as (proxy, tls_redis, plain_redis):
        plain_proxy = dataclasses.replace(proxy, sslmode="disable", sslrootcert="")
        print(
            f"loopback, {args.count} samples per mode or {args.seconds:g} s per figure; TLS = verify-full, EC P-256\n"
        )
        print_rows(
            "proxy: connect + SELECT 1 + close",
            sample({"tls": pg_connect_once(proxy), "plain": pg_connect_once(plain_proxy)}, args.count, args.seconds),
        )
        with (
            proxy.connect(autocommit=True, prepare_threshold=None) as tls_conn,
            plain_proxy.connect(autocommit=True, prepare_threshold=None) as plain_conn,
        ):
            assert tls_conn.pgconn.ssl_in_use and not plain_conn.pgconn.ssl_in_use
            for title, sql in (
                ("proxy: SELECT 1 on an open connection", "SELECT 1"),
                (
                    f"proxy: {PAYLOAD_BYTES // 1024} KiB result on an open connection",
                    f"SELECT repeat('x', {PAYLOAD_BYTES})",
                ),
            ):
                print_rows(
                    title,
                    sample(
                        {
                            "tls": lambda sql=sql: tls_conn.execute(sql).fetchone(),
                            "plain": lambda sql=sql: plain_conn.execute(sql).fetchone(),
                        },
                        args.count * 10,
                        args.seconds,
                    ),
                )
        print_rows(
            "redis: connect + AUTH + PING + close",
            sample(
                {"tls": redis_connect_once(tls_redis), "plain": redis_connect_once(plain_redis)},
                args.count,
                args.seconds,
            ),
        )
        # redis-py builds a fresh SSLContext per connection, loading the system's trust store each time
        # before adding ours: measured alone, as the part of the set-up a pooled client never pays again.
        times = sample({"tls": ssl.create_default_context, "plain": lambda: None}, args.count, args.seconds)
        print(
            f"  of which ssl.create_default_context() per connection: median {statistics.median(times['tls']):.3f} ms"
        )
        tls_client, plain_client = tls_redis.client(), plain_redis.client()
        try:
            for client in (tls_client, plain_client):
                client.set("bench:tls:small", "x" * 100, ex=300)
                client.set("bench:tls:large", "x" * PAYLOAD_BYTES, ex=300)
            for title, key in (
                ("redis: GET 100 B", "bench:tls:small"),
                (f"redis: GET {PAYLOAD_BYTES // 1024} KiB", "bench:tls:large"),
            ):
                print_rows(
                    title,
                    sample(
                        {"tls": lambda key=key: tls_client.get(key), "plain": lambda key=key: plain_client.get(key)},
                        args.count * 10,
                        args.seconds,
                    ),
                )
        finally:
            tls_client.close()
            plain_client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
