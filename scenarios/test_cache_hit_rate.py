"""Cache hit rate: the application's cache-aside path (profiles and vector-search results) under Zipf
key popularity, judged against the document's 70 % / 50 % hit-rate thresholds, and what Redis does
when the working set outgrows a cache.t3.micro's maxmemory.

A team's workload file (HARNESS_WORKLOAD) with a `cache:` section replaces the built-in reads with its own:
key patterns, TTLs, the query behind each key and the column its ids are drawn from.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from harness.app.cache_aside import CacheAside, CacheCounters
from harness.measure.load import Limits, RateWatch, Request, run_closed
from harness.measure.popularity import ZipfKeys
from harness.measure.sampling import ResourceSampler, Samples
from harness.monitoring.publish import AwsMetricPublisher

WORKERS = 4


def require_own_cache(stack) -> None:
    if stack.backend == "external":
        pytest.skip("cache scenarios flush Redis; they do not run against an external deployment")


class Counters:
    """The workers' hit counts: each worker's live while it runs (for the step's stop check), merged when it ends."""

    def __init__(self) -> None:
        self.total = CacheCounters()
        self.lock = threading.Lock()
        self.live: dict[int, CacheCounters] = {}

    def watch(self, counters: CacheCounters) -> None:
        with self.lock:
            self.live[id(counters)] = counters

    def add(self, counters: CacheCounters) -> None:
        with self.lock:
            self.live.pop(id(counters), None)
            self.total.hits += counters.hits
            self.total.misses += counters.misses

    def snapshot(self) -> tuple[int, int]:
        """(hits, reads) so far; a worker's counts may be a request behind, which a stop check tolerates."""
        with self.lock:
            hits = self.total.hits + sum(c.hits for c in self.live.values())
            misses = self.total.misses + sum(c.misses for c in self.live.values())
        return hits, hits + misses


def cache_clients(
    stack, app, users: np.ndarray, tenants: dict[int, int], queries: np.ndarray, skew: float, counters: Counters
):
    """Half the reads are profiles, half are search results; both with Zipf popularity."""
    profile_keys = ZipfKeys(users, skew, seed=11)
    # A search result is cached per (user, query): the keyspace is users x queries.
    search_keys = ZipfKeys(np.arange(len(users) * len(queries)), skew, seed=12)

    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        conn = app.connect(autocommit=True, prepare_threshold=None)
        register_vector(conn)
        redis = stack.redis.client()
        cache = CacheAside(redis, conn)
        profiles, searches = profile_keys.child(100 + index), search_keys.child(200 + index)
        coin = np.random.default_rng(300 + index)

        def request() -> None:
            if coin.random() < 0.5:
                cache.profile(int(profiles.sample(1)[0]))
            else:
                pair = int(searches.sample(1)[0])
                user = int(users[pair // len(queries)])
                cache.search(user, tenants[user], queries[pair % len(queries)])

        counters.watch(cache.counters)
        try:
            yield request
        finally:
            counters.add(cache.counters)
            redis.close()
            conn.close()

    return factory


def configured_cache_clients(stack, app, reads, ids_by_read: list[np.ndarray], skew: float, counters: Counters):
    """The team's reads in equal shares, each key drawn with Zipf popularity from its id column."""
    keys = [ZipfKeys(ids, skew, seed=11 + i) for i, ids in enumerate(ids_by_read)]

    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        conn = app.connect(autocommit=True, prepare_threshold=None)
        cursor = psycopg.RawCursor(conn)
        redis = stack.redis.client()
        cache = CacheAside(redis, conn)
        pickers = [k.child(100 + 10 * index + i) for i, k in enumerate(keys)]
        coin = np.random.default_rng(300 + index)

        def request() -> None:
            i = int(coin.integers(len(reads)))
            read, entity = reads[i], pickers[i].sample(1)[0].item()
            cache.read_through(
                read.key_for(entity),
                read.ttl_s,
                lambda: [list(row) for row in cursor.execute(read.query, (entity,)).fetchall()],
            )

        counters.watch(cache.counters)
        try:
            yield request
        finally:
            counters.add(cache.counters)
            redis.close()
            conn.close()

    return factory


def hit_rate_intervals(samples: Samples) -> list[tuple[float, int, int]]:
    """(t, hits, reads) per sampling interval, from Redis INFO's keyspace counters."""
    hits, misses = samples.series("redis.keyspace_hits"), samples.series("redis.keyspace_misses")
    out = []
    for (_, h0), (_, m0), (t1, h1), (_, m1) in zip(hits, misses, hits[1:], misses[1:], strict=False):
        reads = int(h1 - h0 + m1 - m0)
        if reads > 0:
            out.append((t1, int(h1 - h0), reads))
    return out


def load_population(app) -> tuple[np.ndarray, dict[int, int]]:
    with app.connect(autocommit=True, prepare_threshold=None) as conn:
        rows = conn.execute("SELECT user_id, tenant_id FROM users ORDER BY user_id").fetchall()
    return np.array([r[0] for r in rows]), {r[0]: r[1] for r in rows}


def clients_for(stack, seeded, skew: float):
    """A factory of cache clients at `skew`: the team's configured reads, else the built-in ones."""
    if seeded.cache_reads:
        with seeded.app.connect(autocommit=True, prepare_threshold=None) as conn:
            ids = [np.array([r[0] for r in conn.execute(read.ids_sql)]) for read in seeded.cache_reads]
        return lambda counters: configured_cache_clients(stack, seeded.app, seeded.cache_reads, ids, skew, counters)
    users, tenants = load_population(seeded.app)
    queries = seeded.ground_truth.queries
    return lambda counters: cache_clients(stack, seeded.app, users, tenants, queries, skew, counters)


def run_cache_load(
    stack,
    seeded,
    size,
    skew: float,
    cloudwatch: AwsMetricPublisher | None = None,
    results=None,
    requests: int | None = None,
) -> tuple[Samples, Counters, dict[str, float]]:
    """A warm-up, then `requests` steady reads (the size's cache_requests unless given) at Zipf skew `skew`."""
    requests = size.cache_requests if requests is None else requests
    clients = clients_for(stack, seeded, skew)
    redis = stack.redis.client()
    redis.flushdb()
    warm = Counters()
    warm_up = run_closed(
        clients(warm),
        WORKERS,
        Limits(size.max_duration_s, size.cache_warmup_requests),
        label=f"warm-up s={skew}",
    )
    before = redis.info("stats")
    steady = Counters()
    # At the signoff size the steady loop stops once the hit rate is known to its precision (or at its caps).
    stop = None
    if size.hit_rate_precision is not None:
        stop = RateWatch(size.hit_rate_precision, steady.snapshot, f"hit rate at s={skew}")
    with ResourceSampler(stack, interval_s=0.5, on_sample=cloudwatch).running() as samples:
        result = run_closed(
            clients(steady),
            WORKERS,
            Limits(size.max_duration_s, requests, stop_when=stop),
            label=f"steady s={skew}",
        )
    if result.stopped_early:
        print(f"steady s={skew} stopped early: {result.stopped_early}")
    after = redis.info("stats")
    redis.close()
    assert result.errors == 0, result.error_samples
    if results is not None:
        for step, done, wanted in (
            ("warm-up", warm_up, size.cache_warmup_requests),
            ("steady", result, requests),
        ):
            if done.capped:
                results.record_capped_step(f"cache {step} s={skew}", size.max_duration_s, done.ok, wanted)
    server = {
        "hits": after["keyspace_hits"] - before["keyspace_hits"],
        "misses": after["keyspace_misses"] - before["keyspace_misses"],
        "evicted": after["evicted_keys"] - before["evicted_keys"],
    }
    return samples, steady, server


# A warm-up and a steady loop per skew.
@pytest.mark.load_loops(lambda size: 2)
def test_hit_rate_at_the_design_skew(stack, seeded, size, results, cloudwatch):
    require_own_cache(stack)
    samples, client, server = run_cache_load(stack, seeded, size, size.cache_skew, cloudwatch, results)
    for t, hits, reads in hit_rate_intervals(samples):
        results.record_rate("cache.hit_rate_pct", hits, reads, {"skew": size.cache_skew}, t=t)
    results.record_count("cache.evictions", int(server["evicted"]))
    for t, value in samples.series("redis.cpu_pct"):
        results.record_value("cache.cpu_pct", value, {"scenario": "cache"}, t=t)
    for t, value in samples.series("redis.used_memory"):
        results.record_value("cache.used_memory_bytes", value, t=t)
    for t, value in samples.series("postgres.cpu_pct"):
        results.record_value("rds.cpu_pct", value, {"scenario": "cache"}, t=t)
    for t, value in samples.series("pg.connections_pct"):
        results.record_value("rds.connections_pct", value, {"scenario": "cache"}, t=t)
    server_rate = server["hits"] / (server["hits"] + server["misses"])
    print(
        f"skew {size.cache_skew}: client hit rate {client.total.hit_rate:.3f}, Redis INFO {server_rate:.3f}, "
        f"evicted {server['evicted']}"
    )
    # The application's own count and Redis's must agree: nothing else reads this cache.
    assert server["hits"] + server["misses"] == client.total.hits + client.total.misses
    assert abs(server_rate - client.total.hit_rate) < 1e-9


@pytest.mark.load_loops(lambda size: 2 * len(size.cache_skews))
def test_hit_rate_moves_with_skew(stack, seeded, size, results):
    require_own_cache(stack)
    rates = {}
    for skew in size.cache_skews:
        _, client, _ = run_cache_load(stack, seeded, size, skew, requests=size.cache_curve_requests)
        rates[skew] = client.total.hit_rate
        results.record_rate(
            "cache.skew_hit_rate_pct", client.total.hits, client.total.hits + client.total.misses, {"skew": skew}
        )
    print("hit rate by Zipf skew: " + ", ".join(f"s={s}: {r:.3f}" for s, r in rates.items()))
    ordered = [rates[s] for s in sorted(rates)]
    assert ordered[-1] > ordered[0], f"a more skewed workload should hit more often: {rates}"


def test_working_set_beyond_maxmemory_is_evicted_but_keys_without_ttl_are_not(stack, size, results):
    require_own_cache(stack)
    redis = stack.redis.client()
    maxmemory = int(redis.info("memory")["maxmemory"])
    redis.flushdb()
    pinned = [f"config:pinned:{i}" for i in range(100)]
    redis.mset({key: "x" * 100 for key in pinned})  # no TTL: volatile-lru may never evict these
    value = b"v" * 4096
    batch = 1000
    written = 0
    before = redis.info("stats")["evicted_keys"]
    keys = 0
    while written < size.cache_overflow_bytes:
        pipe = redis.pipeline(transaction=False)
        for _ in range(batch):
            pipe.set(f"user:{keys % 100_000}:blob:{keys}", value, ex=3600)
            keys += 1
        pipe.execute()
        written += batch * len(value)
    info = redis.info()
    evicted = info["evicted_keys"] - before
    sample = np.random.default_rng(5).integers(0, keys, 2000)
    present = sum(redis.exists(f"user:{k % 100_000}:blob:{k}") for k in sample)
    pinned_left = redis.exists(*pinned)
    results.record_count("cache.overflow_evictions", int(evicted))
    results.record_rate("cache.overflow_hit_rate_pct", int(present), len(sample))
    print(
        f"wrote {written / 2**20:.0f} MiB in {keys} keys into maxmemory {maxmemory / 2**20:.0f} MiB: "
        f"evicted {evicted}, {present / len(sample):.1%} of a uniform sample still cached, used_memory "
        f"{info['used_memory'] / 2**20:.0f} MiB"
    )
    redis.flushdb()
    redis.close()
    assert evicted > 0
    assert info["used_memory"] <= maxmemory * 1.05
    assert pinned_left == len(pinned), "volatile-lru evicted keys that have no TTL"
