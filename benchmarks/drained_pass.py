"""Fresh against drained, side by side in one run: vector-search latency and recall@10 and the cache hit
rate on the seeded data (`harness seed --profile default`, the signoff size: 100k x 384).

  fresh    the unit at the start of a day: cache node at its vCPUs, the volume at its burst rate, data warm
           (the query set is run once before it is measured)
  drained  the unit after hours of load and a restart or failover: PostgreSQL restarted with its data
           evicted from the page cache, the volume at its baseline IOPS, the cache node at its baseline CPU

Both passes send the same queries (one client, the application's plain top-10 query through the proxy at
the server's ef_search) and the same cache-aside requests (Zipf s=1.0, one client, cache flushed, then
10,000 requests of warm-up as the signoff scenario does),
and are judged by the thresholds of fixtures/thresholds.yaml for vector_search.latency_ms,
vector_search.recall_at_10 and cache.hit_rate_pct. Every loop is bounded in count and time; 127.0.0.1 only.
Needs a stack up with HARNESS_CPU_CREDITS=drained and enforced cgroups; the caps are left drained.

    .venv/bin/python benchmarks/drained_pass.py [--queries 300] [--cache-requests 20000] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector

from harness.app.cache_aside import CacheAside, CacheCounters
from harness.backends import get_backend
from harness.capacity.probes import CORPUS_SEARCH_SQL, K
from harness.config import resolve_settings
from harness.data.app_role import app_endpoint
from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import recall_at_k
from harness.data.loading import current_seed
from harness.endpoints import StackEndpoints
from harness.measure.popularity import ZipfKeys
from harness.paths import FIXTURES_DIR
from harness.services.cgroups import CgroupLimiter
from harness.sizing import cache_node_type, db_instance_class, disk_limits, storage_sizing
from harness.thresholds.loading import load_thresholds


@dataclass
class Pass:
    latencies_ms: list[float]
    recall: float
    hit_rate_pct: float

    def p(self, q: float, first: int | None = None) -> float:
        values = self.latencies_ms[:first] if first else self.latencies_ms
        return float(np.percentile(values, q)) if values else float("nan")


def search_pass(
    stack: StackEndpoints, app: Any, queries: np.ndarray, truth: np.ndarray, n: int, max_s: float
) -> tuple[list[float], float]:
    order = np.random.default_rng(15).permutation(len(queries))[:n]
    latencies, answers = [], []
    with app.connect(autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        conn.execute("SET statement_timeout = '60s'")
        deadline = time.monotonic() + max_s
        for q in order:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            answers.append([row[0] for row in conn.execute(CORPUS_SEARCH_SQL, (queries[q], K))])
            latencies.append(1000 * (time.perf_counter() - started))
    done = order[: len(answers)]
    return latencies, recall_at_k(answers, truth[done], K)


def cache_pass(stack: StackEndpoints, app: Any, queries: np.ndarray, warmup: int, requests: int, max_s: float) -> float:
    with app.connect(autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        rows = conn.execute("SELECT user_id, tenant_id FROM users ORDER BY user_id").fetchall()
        users = np.array([r[0] for r in rows])
        tenants = {r[0]: r[1] for r in rows}
        redis = stack.redis.client(socket_timeout=30, socket_connect_timeout=5)
        try:
            redis.flushdb()
            cache = CacheAside(redis, conn)
            profiles = ZipfKeys(users, 1.0, seed=11).child(1)
            searches = ZipfKeys(np.arange(len(users) * len(queries)), 1.0, seed=12).child(2)
            coin = np.random.default_rng(3)
            deadline = time.monotonic() + max_s
            for i in range(warmup + requests):
                if time.monotonic() > deadline:
                    break
                if i == warmup:
                    # Judged like the scenario: the hit rate of a warm cache.
                    cache.counters = CacheCounters()
                if coin.random() < 0.5:
                    cache.profile(int(profiles.sample(1)[0]))
                else:
                    pair = int(searches.sample(1)[0])
                    user = int(users[pair // len(queries)])
                    cache.search(user, tenants[user], queries[pair % len(queries)])
        finally:
            redis.close()
    return 100.0 * cache.counters.hit_rate


def judge(threshold: Any, value: float) -> str:
    """PASS, WARN or FAIL of one figure against a threshold's levels (in the metric's unit)."""
    for which, verdict in (("critical", "FAIL"), ("warning", "WARN")):
        level = threshold.level(which)
        if level is not None and not threshold.condition.holds(value, level):
            return verdict
    return "PASS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--cache-warmup", type=int, default=10_000, help="requests before the hit rate counts")
    parser.add_argument("--cache-requests", type=int, default=20_000)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound of each loop")
    args = parser.parse_args()
    settings = resolve_settings()
    backend = get_backend(settings)
    stack = backend.endpoints()
    if stack is None:
        print("the stack is not up: run `harness up` and `harness seed --profile default` first", file=sys.stderr)
        return 1
    credits = stack.facts.get("credits") or {}
    if credits.get("mode") != "drained" or not credits.get("enforced"):
        print(f"needs a drained, enforced unit; here: {credits.get('detail')}", file=sys.stderr)
        return 1
    state = current_seed(stack.direct)
    if state is None:
        print("no seeded data: run `harness seed --profile default`", file=sys.stderr)
        return 1
    truth = load_current_ground_truth(stack.direct, settings.state_dir / "data")
    app = app_endpoint(stack, settings.state_dir)
    node = cache_node_type(stack.facts["redis"]["node_type"])
    assert node.credits is not None
    redis_group = CgroupLimiter(credits["redis_cgroup"])
    storage = credits["storage"]
    device = storage["device"]
    volume = storage_sizing(storage["type"], int(storage["allocated_gib"]))
    link = db_instance_class(stack.facts["postgres"]["instance_class"]).ebs
    burst = disk_limits(volume, link, bursting=True)
    print(f"data: {state.profile}; {len(truth.queries)} held-out queries; one client through the proxy")

    cache_args = (args.cache_warmup, args.cache_requests, args.max_seconds)

    # -- fresh: burst caps, warm data ----------------------------------------------------------------
    redis_group.set_cpu_limit(float(node.vcpus))
    CgroupLimiter(credits["postgres_cgroup"]).set_io_limits(device, burst.iops, burst.bytes_s)
    search_pass(stack, app, truth.queries, truth.ids, args.queries, args.max_seconds)  # warm-up
    latencies, recall = search_pass(stack, app, truth.queries, truth.ids, args.queries, args.max_seconds)
    fresh = Pass(latencies, recall, cache_pass(stack, app, truth.queries, *cache_args))

    # -- drained: restart (cold page cache, drained caps applied by the start), cache node at baseline ---
    began = time.monotonic()
    backend.restart("postgres", lambda message: None)
    print(f"PostgreSQL restarted cold in {time.monotonic() - began:.1f} s")
    stack = backend.endpoints() or stack
    redis_group.set_cpu_limit(node.credits.baseline_vcpus)
    latencies, recall = search_pass(stack, app, truth.queries, truth.ids, args.queries, args.max_seconds)
    drained = Pass(latencies, recall, cache_pass(stack, app, truth.queries, *cache_args))

    thresholds = load_thresholds(FIXTURES_DIR / "thresholds.yaml").by_id()
    print(f"\n{'':34}{'fresh':>12}{'drained':>12}   thresholds (warning; critical)")
    rows = [
        ("vector search queries measured", len(fresh.latencies_ms), len(drained.latencies_ms), ""),
        ("vector search p50 ms", fresh.p(50), drained.p(50), ""),
        ("vector search p95 ms", fresh.p(95), drained.p(95), "vector_search.latency_ms"),
        ("  first 100 queries p95 ms", fresh.p(95, 100), drained.p(95, 100), ""),
        ("recall@10", fresh.recall, drained.recall, "vector_search.recall_at_10"),
        ("cache hit rate % (warm)", fresh.hit_rate_pct, drained.hit_rate_pct, "cache.hit_rate_pct"),
    ]
    for label, a, b, threshold_id in rows:
        levels = ""
        if threshold_id in thresholds:
            t = thresholds[threshold_id]
            levels = f"   {t.level('warning'):g}; {t.level('critical'):g}   fresh {judge(t, a)}, drained {judge(t, b)}"
        print(f"{label:34}{a:>12.4g}{b:>12.4g}{levels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
