"""Drill: cache failure. Redis is SIGKILLed under the application's cache-aside reads and restarted empty
(a cache.t3.micro node without backups loses its contents, as here).

Measured: requests that failed on the application path (must be 0: a cache outage degrades reads to
PostgreSQL, it does not fail them), reads answered from PostgreSQL while the cache was down, the read
latency and database queries per second before, during and after (the database's spike: every miss is a
query), and the hit-rate recovery curve back to the document's 70 % warning level, twice: cold, and after
the document's warm_cache_with_critical_data (the hottest users' profiles loaded in one pass).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.app.cache_aside import CacheAside, warm_profiles
from harness.backends.base import Backend
from harness.drills.result import DrillResult
from harness.endpoints import PostgresEndpoint, StackEndpoints
from harness.measure.popularity import ZipfKeys
from harness.measure.sampling import ResourceSampler

HIT_RATE_WARNING = 0.70
WINDOW_S = 0.5
ZIPF_S = 1.0
# The "critical data": as many of the hottest users as carry this share of the traffic.
CRITICAL_SHARE = 0.8
SAMPLE_S = 0.25


def _user_ids(app: PostgresEndpoint) -> np.ndarray:
    with app.connect(autocommit=True, prepare_threshold=None) as conn:
        return np.array([r[0] for r in conn.execute("SELECT user_id FROM users ORDER BY user_id")], dtype=np.int64)


class Reader:
    """One application worker: cache-aside profile reads with Zipf popularity, windows of hit rate."""

    def __init__(self, stack: StackEndpoints, app: PostgresEndpoint, keys: ZipfKeys) -> None:
        self.conn = app.connect(autocommit=True, prepare_threshold=None, connect_timeout=5)
        self.redis = stack.redis.client(socket_timeout=2, socket_connect_timeout=1)
        self.cache = CacheAside(self.redis, self.conn)
        self.keys = keys
        self.failures = 0
        self.requests = 0

    def close(self) -> None:
        self.redis.close()
        self.conn.close()

    def run(self, seconds: float, max_requests: int = 200_000) -> list[dict[str, float]]:
        """Read for `seconds`; one point per window: t, hit rate, db queries/s, p95 latency, degraded reads."""
        points: list[dict[str, float]] = []
        began = time.monotonic()
        end = began + seconds
        while time.monotonic() < end and self.requests < max_requests:
            window_end = min(time.monotonic() + WINDOW_S, end)
            before = (self.cache.counters.hits, self.cache.counters.misses, self.cache.counters.cache_errors)
            latencies = []
            while time.monotonic() < window_end and self.requests < max_requests:
                t0 = time.perf_counter()
                try:
                    self.cache.profile(int(self.keys.sample(1)[0]))
                except Exception:
                    self.failures += 1
                latencies.append((time.perf_counter() - t0) * 1000)
                self.requests += 1
            hits = self.cache.counters.hits - before[0]
            misses = self.cache.counters.misses - before[1]
            points.append(
                {
                    "t": round(time.monotonic() - began, 2),
                    "hit_rate": round(hits / (hits + misses), 3) if hits + misses else 0.0,
                    "db_queries_per_s": round(misses / WINDOW_S, 1),
                    "p95_ms": round(float(np.percentile(latencies, 95)), 2) if latencies else 0.0,
                    "degraded": self.cache.counters.cache_errors - before[2],
                }
            )
        return points


def _recovery_s(points: list[dict[str, float]]) -> float | None:
    return next((p["t"] for p in points if p["hit_rate"] >= HIT_RATE_WARNING), None)


def _outage(
    backend: Backend, reader: Reader, report: Callable[[str], None], down_s: float, after_s: float, warm: Any
) -> tuple[list[dict[str, float]], list[dict[str, float]], int]:
    backend.kill("redis", report)
    during = reader.run(down_s)
    backend.up(report)
    warmed = warm() if warm else 0
    after = reader.run(after_s)
    return during, after, warmed


def run(
    backend: Backend,
    stack: StackEndpoints,
    app: PostgresEndpoint,
    report: Callable[[str], None] = print,
    steady_s: float = 3.0,
    down_s: float = 2.0,
    after_s: float = 8.0,
) -> DrillResult:
    result = DrillResult("cache")
    users = _user_ids(app)
    keys = ZipfKeys(users, ZIPF_S, seed=17)
    critical = int(np.searchsorted(keys.cdf, CRITICAL_SHARE) + 1)
    reader = Reader(stack, app, keys)
    # The database takes every read while the cache is down: its CPU and connections, steady vs down.
    sampler = ResourceSampler(stack, interval_s=SAMPLE_S)
    phases: dict[str, tuple[float, float]] = {}
    try:
        with stack.redis.client() as redis:
            redis.flushdb()
        with sampler.running() as samples:
            began = time.time()
            steady = reader.run(steady_s)
            phases["steady"] = (began, time.time())
            backend.kill("redis", report)
            began = time.time()
            during = reader.run(down_s)
            phases["down"] = (began, time.time())
            backend.up(report)
            cold = reader.run(after_s)

        def warm() -> int:
            with stack.redis.client() as redis:
                return warm_profiles(redis, reader.conn, [int(u) for u in keys.keys[:critical]])

        _, warmed_curve, warmed = _outage(backend, reader, report, down_s, after_s, warm)
    finally:
        reader.close()
    f = result.figures
    f["requests"] = reader.requests
    f["failed_requests"] = reader.failures
    f["error_rate_pct"] = round(100 * reader.failures / max(reader.requests, 1), 3)
    f["degraded_reads_while_down"] = int(sum(p["degraded"] for p in during))
    f["steady_hit_rate"] = steady[-1]["hit_rate"] if steady else None
    f["steady_db_queries_per_s"] = steady[-1]["db_queries_per_s"] if steady else None
    f["down_db_queries_per_s"] = max((p["db_queries_per_s"] for p in during), default=None)
    f["steady_p95_ms"] = steady[-1]["p95_ms"] if steady else None
    f["down_p95_ms"] = max((p["p95_ms"] for p in during), default=None)
    f["cold_recovery_to_70pct_s"] = _recovery_s(cold)
    f["warmed_recovery_to_70pct_s"] = _recovery_s(warmed_curve)
    f["warmed_keys"] = warmed
    f["cold_curve"] = cold
    for key, figure in (("postgres.cpu_pct", "db_cpu_pct"), ("pg.connections", "db_connections")):
        for phase, (start, end) in phases.items():
            values = [v for t, v in samples.series(key) if start <= t <= end]
            f[f"{phase}_{figure}_max"] = round(max(values), 1) if values else None
    f["warmed_curve"] = warmed_curve
    result.check("no failed request on the application path", reader.failures == 0, f"{reader.failures} failed")
    result.check(
        "reads answered from PostgreSQL while the cache was down",
        f["degraded_reads_while_down"] > 0,
        f"{f['degraded_reads_while_down']} reads degraded",
    )
    result.check(
        "hit rate back above 70 % after a cold restart",
        f["cold_recovery_to_70pct_s"] is not None,
        f"after {f['cold_recovery_to_70pct_s']} s (window {WINDOW_S} s)",
    )
    first = warmed_curve[0]["hit_rate"] if warmed_curve else 0.0
    result.check(
        "warming the critical data restores the hit rate at once",
        first >= HIT_RATE_WARNING,
        f"{warmed} hottest profiles warmed; first {WINDOW_S} s window after the restart at {first:.0%}",
    )
    result.notes.append(
        f"one reader, profile reads only; database CPU (share of its vCPUs) and connections sampled every "
        f"{SAMPLE_S} s: {sampler.result.unavailable or 'all available'}"
    )
    return result
