"""Drill: network faults between the application and PostgreSQL (through the proxy) and Redis.

A fault-injecting TCP proxy (harness.services.fault_proxy) is put in front of PgBouncer and of Redis; the
application path (cache-aside profile reads as the application role, the drill writer) runs through both,
with TLS verified end to end (verify-full: the fault proxy forwards bytes, it terminates nothing). Each
fault in turn: added latency, latency with jitter, a reset of every connection, and a blackhole of
BLACKHOLE_S seconds on each link. Measured per fault: requests, failed requests, p50/p95/max request time,
and after a blackhole the time from its end to the first successful request.

The point of the blackhole: a user-space proxy ACKs bytes itself (so does RDS Proxy), so TCP user timeouts
and keepalives never fire; only the clients' own request timeouts bound a silent network. Every request
must end (fail or succeed) within its client's bound, well before the blackhole ends. Both fault proxies
are stopped when the drill ends, also when it fails half-way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from harness.app.cache_aside import CacheAside
from harness.app.gdpr_deploy import APP_DB_SECRET_ID, deploy_to_stack
from harness.app.gdpr_invoke import invoke, lambda_client
from harness.drills.result import DrillResult
from harness.drills.writes import (
    CONNECT_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    WriteLoad,
    prepare_table,
    stored_ids,
)
from harness.endpoints import PostgresEndpoint, RedisEndpoint, StackEndpoints
from harness.measure.popularity import ZipfKeys
from harness.services.fault_proxy import FaultProxy

LATENCY_MS = 50.0
JITTER_MS = 40.0
BLACKHOLE_S = 8.0
PHASE_S = 2.0
# The application path's client bounds (what a request may take when the network goes silent).
PG_REQUEST_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 1.0
REDIS_CONNECT_TIMEOUT_S = 1.0
# redis-py retries a failed command once (RedisEndpoint.client): two attempts, each may reconnect. A read
# whose GET failed skips its SET (CacheAside), so one command per request meets the silence.
REDIS_BOUND_S = 2 * (REDIS_SOCKET_TIMEOUT_S + REDIS_CONNECT_TIMEOUT_S)
PG_BOUND_S = max(PG_REQUEST_TIMEOUT_S, float(CONNECT_TIMEOUT_S))
# A GDPR Lambda whose new environment connects through a blackhole: its own connect timeout (10 s,
# gdpr_common) must fail the invocation before the link heals.
LAMBDA_FUNCTION = "audit_logging"
LAMBDA_CONNECT_TIMEOUT_S = 10.0
LAMBDA_BLACKHOLE_S = 25.0
# Scheduling on a shared two-core machine: a request may end this much after its bound.
SLACK_S = 1.5


@dataclasses.dataclass
class Request:
    began: float
    seconds: float
    ok: bool
    # The failure's exception class, so a drill that fails names what failed.
    error: str = ""


class AppPath:
    """One application worker: cache-aside profile reads, reconnecting after a failed request."""

    def __init__(self, pg: PostgresEndpoint, redis: RedisEndpoint, users: np.ndarray) -> None:
        self.pg = pg
        self.redis = redis.client(socket_timeout=REDIS_SOCKET_TIMEOUT_S, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S)
        self.keys = ZipfKeys(users, 1.0, seed=23)
        self.conn: Any = None
        self.cache: CacheAside | None = None
        self.requests: list[Request] = []

    def _path(self) -> CacheAside:
        if self.conn is None or self.conn.closed or self.cache is None:
            self.conn = self.pg.connect(
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=CONNECT_TIMEOUT_S,
                request_timeout_s=PG_REQUEST_TIMEOUT_S,
            )
            self.cache = CacheAside(self.redis, self.conn)
        return self.cache

    def request(self) -> Request:
        began = time.monotonic()
        ok, error = True, ""
        try:
            self._path().profile(int(self.keys.sample(1)[0]))
        except Exception as exc:
            ok, error = False, type(exc).__name__
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
            self.conn = None
            time.sleep(0.02)
        done = Request(began, time.monotonic() - began, ok, error)
        self.requests.append(done)
        return done

    def reconnect(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def run(self, seconds: float, max_requests: int = 100_000) -> list[Request]:
        end = time.monotonic() + seconds
        out: list[Request] = []
        while time.monotonic() < end and len(out) < max_requests:
            out.append(self.request())
        return out

    def tls_in_use(self) -> tuple[bool, bool]:
        self._path()
        redis_conn = self.redis.connection_pool.get_connection()
        try:
            redis_tls = type(redis_conn).__name__ == "SSLConnection"
            redis_conn.send_command("PING")
            redis_conn.read_response()
        finally:
            self.redis.connection_pool.release(redis_conn)
        return bool(self.conn.pgconn.ssl_in_use), redis_tls

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.close()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()


class _UnboundedProbe:
    """One request on a connection with only a TCP user timeout and keepalives, sent as the blackhole starts:
    how long a client without its own request timeout waits. (A statement_timeout would not help either:
    the statement never reaches the server.)"""

    def __init__(self, endpoint: PostgresEndpoint) -> None:
        self.conn = endpoint.connect(
            autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, tcp_user_timeout=5000, keepalives_idle=1
        )
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name="drill-unbounded-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        with contextlib.suppress(Exception):
            self.conn.execute("SELECT 1")
        self.seconds = round(time.monotonic() - began, 2)

    def join(self) -> float | None:
        # Bounded by the blackhole itself: the held bytes are delivered when it ends.
        self._thread.join(BLACKHOLE_S + 30)
        with contextlib.suppress(Exception):
            self.conn.close()
        return self.seconds


def summary(requests: list[Request]) -> dict[str, Any]:
    times = [r.seconds * 1000 for r in requests]
    return {
        "requests": len(requests),
        "failed": sum(1 for r in requests if not r.ok),
        "errors": sorted({r.error for r in requests if r.error}),
        "p50_ms": round(float(np.percentile(times, 50)), 2) if times else None,
        "p95_ms": round(float(np.percentile(times, 95)), 2) if times else None,
        "max_ms": round(max(times), 2) if times else None,
    }


@contextlib.contextmanager
def fault_proxies(
    stack: StackEndpoints, pg_port: int = 0, redis_port: int = 0
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Fault proxies in front of the proxy (PgBouncer) and Redis, stopped on the way out whatever happens."""
    with contextlib.ExitStack() as stack_of_proxies:
        pg = stack_of_proxies.enter_context(FaultProxy(stack.proxy.host, stack.proxy.port, pg_port, "fault-pg"))
        redis = stack_of_proxies.enter_context(
            FaultProxy(stack.redis.host, stack.redis.port, redis_port, "fault-redis")
        )
        yield pg, redis


def _users(app: PostgresEndpoint) -> np.ndarray:
    with app.connect(autocommit=True, prepare_threshold=None, request_timeout_s=30) as conn:
        rows = conn.execute("SELECT user_id FROM users ORDER BY user_id LIMIT 5000").fetchall()
    if not rows:
        raise RuntimeError("the network drill reads users' profiles: seed the unit first (`harness seed`)")
    return np.array([r[0] for r in rows], dtype=np.int64)


def _blackhole(
    name: str,
    proxy: FaultProxy,
    path: AppPath,
    bound_s: float,
    result: DrillResult,
    writer: WriteLoad | None,
    at_start: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    # A fresh database connection: one reset by an earlier fault while every read hit the cache would
    # otherwise fail the first read the blackhole sends to PostgreSQL, a leftover of that fault, not this one.
    path.reconnect()
    path.run(0.5)
    began = time.monotonic()
    proxy.blackhole(BLACKHOLE_S)
    at_start()
    during = path.run(BLACKHOLE_S)
    ended = began + BLACKHOLE_S
    after = path.run(PHASE_S * 2)
    first_ok = next((r for r in after if r.ok and r.began >= ended), None)
    figures = {
        **summary(during),
        "recovery_s": round(first_ok.began + first_ok.seconds - ended, 2) if first_ok else None,
        "after": summary(after),
    }
    longest = max((r.seconds for r in during), default=0.0)
    result.check(
        f"{name} blackhole: every request ended within its client's bound",
        longest <= bound_s + SLACK_S and longest < BLACKHOLE_S,
        f"longest request {longest:.2f} s (bound {bound_s:.1f} s + {SLACK_S} s slack, blackhole {BLACKHOLE_S:.0f} s); "
        f"{figures['requests']} requests, {figures['failed']} failed",
    )
    result.check(
        f"{name} blackhole: requests succeed again once it ends",
        first_ok is not None,
        f"first success {figures['recovery_s']} s after the blackhole ended",
    )
    if writer is not None:
        gaps = np.diff([t for t, _ in writer.attempts if began - 1 <= t <= ended + 1] or [0.0])
        longest_write = float(gaps.max()) if len(gaps) else 0.0
        figures["writer_longest_wait_s"] = round(longest_write, 2)
        figures["writer_failed"] = writer.failures_between(began, ended)
        result.check(
            f"{name} blackhole: the drill writer's requests ended within its bound",
            longest_write <= max(REQUEST_TIMEOUT_S, CONNECT_TIMEOUT_S) + SLACK_S and figures["writer_failed"] > 0,
            f"longest wait between attempts {longest_write:.2f} s, {figures['writer_failed']} failed writes",
        )
    return figures


def lambda_through_blackhole(
    stack: StackEndpoints, state_dir: Any, pg_fault: FaultProxy, result: DrillResult, report: Callable[[str], None]
) -> None:
    """Point the functions' database secret at the fault proxy, invoke a function from a new environment
    while the link is silent, and put the secret back (also on failure)."""
    client = lambda_client(stack.aws)
    if LAMBDA_FUNCTION not in {fn["FunctionName"] for fn in client.list_functions().get("Functions", [])}:
        deploy_to_stack(stack, state_dir, names=[LAMBDA_FUNCTION])
    sm = stack.aws.client("secretsmanager")
    original = sm.get_secret_value(SecretId=APP_DB_SECRET_ID)["SecretString"]
    description = client.get_function_configuration(FunctionName=LAMBDA_FUNCTION).get("Description", "")
    batch = {"events": [{"actor": "drill", "action": "drill.network", "details": {}}]}
    f = result.figures
    try:
        sm.put_secret_value(
            SecretId=APP_DB_SECRET_ID, SecretString=json.dumps({**json.loads(original), "port": pg_fault.port})
        )
        # A configuration change retires the warm environments: new ones read the secret again.
        client.update_function_configuration(FunctionName=LAMBDA_FUNCTION, Description=f"{description} [drill]")
        healthy = invoke(client, LAMBDA_FUNCTION, batch)
        client.update_function_configuration(FunctionName=LAMBDA_FUNCTION, Description=f"{description} [drill 2]")
        report(
            f"network drill: {LAMBDA_FUNCTION} from a new environment through a {LAMBDA_BLACKHOLE_S:.0f} s blackhole"
        )
        pg_fault.blackhole(LAMBDA_BLACKHOLE_S)
        began = time.monotonic()
        silent = invoke(client, LAMBDA_FUNCTION, batch)
        waited = time.monotonic() - began
    finally:
        pg_fault.clear()
        sm.put_secret_value(SecretId=APP_DB_SECRET_ID, SecretString=original)
        client.update_function_configuration(FunctionName=LAMBDA_FUNCTION, Description=description)
    f["lambda_through_proxy_ok"] = healthy.function_error is None
    f["lambda_blackhole_s"] = round(waited, 2)
    f["lambda_blackhole_error"] = (silent.payload or {}).get("errorType") if isinstance(silent.payload, dict) else None
    result.check(
        f"{LAMBDA_FUNCTION} through the fault proxy works, and fails within its connect timeout in a blackhole",
        f["lambda_through_proxy_ok"] and silent.function_error is not None and waited < LAMBDA_BLACKHOLE_S,
        f"healthy: {healthy.function_error or 'ok'}; in the blackhole: {f['lambda_blackhole_error']} after "
        f"{waited:.2f} s (connect timeout {LAMBDA_CONNECT_TIMEOUT_S:g} s + a cold start; blackhole "
        f"{LAMBDA_BLACKHOLE_S:g} s)",
    )


def run(
    stack: StackEndpoints,
    app: PostgresEndpoint,
    report: Callable[[str], None] = print,
    pg_port: int = 0,
    redis_port: int = 0,
    state_dir: Any = None,
) -> DrillResult:
    """`state_dir` given: a GDPR Lambda goes through the blackhole too (its secret briefly points at the
    fault proxy)."""
    result = DrillResult("network")
    f = result.figures
    users = _users(app)
    prepare_table(stack.direct)
    with fault_proxies(stack, pg_port, redis_port) as (pg_fault, redis_fault):
        f["fault_proxy_pg"] = f"127.0.0.1:{pg_fault.port} -> {stack.proxy.host}:{stack.proxy.port}"
        f["fault_proxy_redis"] = f"127.0.0.1:{redis_fault.port} -> {stack.redis.host}:{stack.redis.port}"
        pg = dataclasses.replace(app, port=pg_fault.port)
        redis = dataclasses.replace(stack.redis, port=redis_fault.port)
        path = AppPath(pg, redis, users)
        try:
            pg_tls, redis_tls = path.tls_in_use()
            result.check(
                "TLS verified through the fault proxies",
                (pg_tls or not app.sslmode) and (redis_tls or not stack.redis.tls),
                f"PostgreSQL sslmode={app.sslmode or 'default'} ssl_in_use={pg_tls}; Redis tls={redis_tls}",
            )
            report("network drill: baseline")
            f["baseline"] = summary(path.run(PHASE_S))
            report(f"network drill: latency {LATENCY_MS:.0f} ms each way on both links")
            pg_fault.set_latency(LATENCY_MS)
            redis_fault.set_latency(LATENCY_MS)
            f["latency"] = summary(path.run(PHASE_S))
            report(f"network drill: latency {LATENCY_MS:.0f} ± {JITTER_MS:.0f} ms")
            pg_fault.set_latency(LATENCY_MS, JITTER_MS)
            redis_fault.set_latency(LATENCY_MS, JITTER_MS)
            f["jitter"] = summary(path.run(PHASE_S))
            pg_fault.clear()
            redis_fault.clear()
            result.check(
                "added latency shows in the request time and fails nothing",
                f["latency"]["failed"] == 0
                and f["jitter"]["failed"] == 0
                and f["latency"]["p50_ms"] >= f["baseline"]["p50_ms"] + LATENCY_MS,
                f"p50 {f['baseline']['p50_ms']} ms -> {f['latency']['p50_ms']} ms (latency), "
                f"{f['jitter']['p50_ms']} ms (jitter; p95 {f['jitter']['p95_ms']} ms)",
            )
            report("network drill: reset every connection")
            path.run(0.5)
            reset_at = time.monotonic()
            f["reset_connections"] = pg_fault.reset_connections() + redis_fault.reset_connections()
            after_reset = path.run(PHASE_S)
            first_ok = next((r for r in after_reset if r.ok), None)
            f["reset"] = summary(after_reset)
            f["reset_recovery_s"] = round(first_ok.began + first_ok.seconds - reset_at, 2) if first_ok else None
            result.check(
                "a reset fails at most the requests in flight; the next ones reconnect",
                first_ok is not None and f["reset"]["failed"] <= 3,
                f"{f['reset_connections']} connections reset, {f['reset']['failed']} failed requests, "
                f"first success after {f['reset_recovery_s']} s",
            )
            report(f"network drill: blackhole PostgreSQL for {BLACKHOLE_S:.0f} s (with the drill writer)")
            # The writer writes as the admin (drill.acks is the drill's table), through the same fault proxy.
            admin = dataclasses.replace(stack.proxy, port=pg_fault.port)
            unbounded = _UnboundedProbe(admin)
            with WriteLoad(admin, max_s=BLACKHOLE_S + 30) as writer:
                f["blackhole_postgres"] = _blackhole(
                    "PostgreSQL", pg_fault, path, PG_BOUND_S, result, writer, unbounded.start
                )
            f["unbounded_client_wait_s"] = unbounded.join()
            lost = [n for n in writer.acknowledged if n not in stored_ids(stack.direct)]
            f["writer_acknowledged"] = len(writer.acknowledged)
            f["writer_acknowledged_lost"] = len(lost)
            result.check("no acknowledged write lost", not lost and bool(writer.acknowledged), f"{len(lost)} lost")
            report(f"network drill: blackhole Redis for {BLACKHOLE_S:.0f} s")
            f["blackhole_redis"] = _blackhole("Redis", redis_fault, path, REDIS_BOUND_S, result, None)
            result.check(
                "a Redis blackhole degrades reads to PostgreSQL instead of failing them",
                f["blackhole_redis"]["failed"] == 0,
                f"{f['blackhole_redis']['failed']} failed of {f['blackhole_redis']['requests']} "
                f"{f['blackhole_redis']['errors'] or ''}",
            )
            # Environments that are containers reach the unit's published ports only, not this fault proxy.
            in_containers = "containers" in stack.facts.get("lambda", {})
            if state_dir is not None and stack.aws.lambda_url and not in_containers:
                lambda_through_blackhole(stack, state_dir, pg_fault, result, report)
            elif state_dir is not None:
                result.notes.append(
                    "a GDPR Lambda through the PostgreSQL blackhole: NOT EMULATED on this stack: its Lambda "
                    "environments are containers, which reach the unit's published ports but not the drill's "
                    "fault proxy (or it runs no Lambda runtime of the harness's)"
                )
        finally:
            path.close()
    everything = path.requests
    f["requests"] = len(everything)
    f["failed_requests"] = sum(1 for r in everything if not r.ok)
    f["client_bounds_s"] = {"postgres_request": PG_REQUEST_TIMEOUT_S, "postgres_connect": CONNECT_TIMEOUT_S}
    result.notes.append(
        "clients bound a silent network themselves: PostgreSQL connections of the application path carry a "
        f"{PG_REQUEST_TIMEOUT_S:g} s request timeout (PostgresEndpoint.connect(request_timeout_s=...)), Redis "
        f"clients a {REDIS_SOCKET_TIMEOUT_S:g} s socket timeout; TCP timeouts cannot, a proxy ACKs the bytes"
    )
    result.notes.append(
        f"without its own request timeout a client waited {f['unbounded_client_wait_s']} s of the "
        f"{BLACKHOLE_S:g} s blackhole (TCP_USER_TIMEOUT 5 s and keepalives after 1 s set: neither fires)"
    )
    result.notes.append(
        "a GDPR Lambda's new connection is bounded by its connect timeout (shown above when run with a state "
        "dir); a request on a warm connection has no client-side request timeout in the functions: its bound "
        "is the function's Timeout (30-300 s), which the local runtime enforces; not shown here"
    )
    return result
