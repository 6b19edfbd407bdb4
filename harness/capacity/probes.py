"""The requests a capacity step sends, and what the server says about memory and reads around them.

Vector search is the application's plain top-10 query through the proxy (the server's hnsw.ef_search is
the one in force); the cache path is harness.app.cache_aside; pooling is a fresh connection through the
proxy per request, as a Lambda without a pool opens one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from hdrh.histogram import HdrHistogram
from pgvector.psycopg import register_vector

from harness.app.cache_aside import CacheAside, CacheCounters
from harness.data.ground_truth import RetrievedAnswers
from harness.endpoints import PostgresEndpoint, StackEndpoints
from harness.measure.load import ClientFactory, Request
from harness.measure.popularity import ZipfKeys
from harness.measure.results import new_histogram

K = 10
CORPUS_SEARCH_SQL = "SELECT doc_id FROM documents ORDER BY embedding <=> %s LIMIT %s"
PING_SQL = "SELECT 1"
# Every client of a capacity step gives up on a query after this: a stalled server fails a step, never hangs it.
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 30


def connect(endpoint: PostgresEndpoint) -> psycopg.Connection[Any]:
    # prepare_threshold=None: behind a transaction pooler a prepared statement may land on another backend.
    conn: psycopg.Connection[Any] = endpoint.connect(
        autocommit=True, prepare_threshold=None, connect_timeout=CONNECT_TIMEOUT_S
    )
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    return conn


def search_clients(endpoint: PostgresEndpoint, queries: np.ndarray, answers: RetrievedAnswers) -> ClientFactory:
    """Each client walks the queries in its own order: the same sequence everywhere would flatter caches."""

    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        conn = connect(endpoint)
        register_vector(conn)
        order = np.random.default_rng(1000 + index).permutation(len(queries))
        position = 0
        seen: dict[int, list[int]] = {}

        def request() -> None:
            nonlocal position
            query = int(order[position % len(order)])
            position += 1
            seen[query] = [row[0] for row in conn.execute(CORPUS_SEARCH_SQL, (queries[query], K))]

        try:
            yield request
        finally:
            answers.add(seen)
            conn.close()

    return factory


def cache_clients(
    stack: StackEndpoints,
    app: PostgresEndpoint,
    users: np.ndarray,
    tenants: np.ndarray,
    queries: np.ndarray,
    counters: CacheCounters,
    skew: float = 1.0,
) -> ClientFactory:
    """Half profile reads, half per-user search results, both with Zipf popularity (as the cache scenario)."""
    profile_keys = ZipfKeys(np.arange(len(users)), skew, seed=11)
    search_keys = ZipfKeys(np.arange(len(users) * len(queries)), skew, seed=12)
    lock = threading.Lock()

    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        conn = connect(app)
        register_vector(conn)
        redis = stack.redis.client()
        cache = CacheAside(redis, conn)
        profiles, searches = profile_keys.child(100 + index), search_keys.child(200 + index)
        coin = np.random.default_rng(300 + index)

        def request() -> None:
            if coin.random() < 0.5:
                cache.profile(int(users[int(profiles.sample(1)[0])]))
            else:
                pair = int(searches.sample(1)[0])
                user = pair // len(queries)
                cache.search(int(users[user]), int(tenants[user]), queries[pair % len(queries)])

        try:
            yield request
        finally:
            with lock:
                counters.hits += cache.counters.hits
                counters.misses += cache.counters.misses
            redis.close()
            conn.close()

    return factory


class Acquisitions:
    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.lock = threading.Lock()

    def add(self, histogram: HdrHistogram) -> None:
        with self.lock:
            self.histogram.add(histogram)


def fresh_connection_clients(endpoint: PostgresEndpoint, acquisitions: Acquisitions) -> ClientFactory:
    @contextmanager
    def factory(index: int) -> Iterator[Request]:
        histogram = new_histogram()

        def request() -> None:
            began = time.perf_counter()
            conn = connect(endpoint)
            histogram.record_value(max(1, round((time.perf_counter() - began) * 1e6)))
            try:
                conn.execute(PING_SQL).fetchone()
            finally:
                conn.close()

        try:
            yield request
        finally:
            acquisitions.add(histogram)

    return factory


@dataclass(frozen=True)
class IoCounters:
    """pg_stat_database's block counters of the current database: a read is a block that missed
    shared_buffers (served by the OS cache or the disk; this machine cannot tell them apart)."""

    t: float
    blocks_read: int
    blocks_hit: int


def io_counters(conn: psycopg.Connection[Any]) -> IoCounters:
    row = conn.execute("SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return IoCounters(time.monotonic(), int(row[0]), int(row[1]))


@dataclass(frozen=True)
class IoDelta:
    reads_per_s: float
    hit_ratio: float | None

    @classmethod
    def between(cls, before: IoCounters, after: IoCounters) -> IoDelta:
        reads, hits = after.blocks_read - before.blocks_read, after.blocks_hit - before.blocks_hit
        elapsed = max(after.t - before.t, 1e-6)
        return cls(reads / elapsed, hits / (hits + reads) if hits + reads else None)


@dataclass(frozen=True)
class MemoryFacts:
    index_bytes: int
    table_bytes: int
    shared_buffers_bytes: int


def memory_facts(conn: psycopg.Connection[Any]) -> MemoryFacts:
    row = conn.execute(
        "SELECT coalesce((SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i "
        "  JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'documents'::regclass "
        "  AND c.relname LIKE 'documents_embedding_%%'), 0), "
        "pg_table_size('documents'), "
        "(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')"
    ).fetchone()
    assert row is not None
    return MemoryFacts(int(row[0]), int(row[1]), int(row[2]))


def users_and_tenants(conn: psycopg.Connection[Any], limit: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    rows = conn.execute("SELECT user_id, tenant_id FROM users ORDER BY user_id LIMIT %s", (limit,)).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64)
