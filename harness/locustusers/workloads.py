"""The unit's workloads as abstract Locust Users: vector search, cache-aside reads and GDPR requests.

Each gives its requests as methods; a locustfile subclasses it, picks the tasks, their weights and the
wait time (GDPR requests come with their mix, GDPR_TASK_MIX). The knobs are Locust options
(harness.locustusers.plugin): --ef-search, --k, --via, --zipf-s, --audit-batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from locust.env import Environment

from harness.app import clones
from harness.app.cache_aside import CacheAside
from harness.backends.guard import require_destructive_allowed
from harness.data.ground_truth import recall_at_k
from harness.locustusers.users import LambdaUser, PostgresUser, timed_request

RECALL_K = 10


class VectorSearchUser(PostgresUser):
    """Top-k KNN over the seeded vectors (the workload file's vector_search table and column, else the built-in
    documents) with the seed's held-out queries. Latency goes to
    vector_search.latency_ms and, when k >= 10, recall@10 against the exact neighbours to
    vector_search.recall_at_10, so a fast but wrong index cannot pass."""

    abstract = True

    def on_start(self) -> None:
        super().on_start()
        self.truth = self.harness.ground_truth()
        self.search_sql = self.harness.vector_target().search_sql
        # Each user walks the queries in its own order: all users sending one sequence would flatter caches.
        self.order = np.random.default_rng().permutation(len(self.truth.queries))
        self.position = 0

    def search(self) -> None:
        k, ef_search = int(self.options.k), int(self.options.ef_search)
        query = int(self.order[self.position % len(self.order)])
        self.position += 1
        labels = {"source": "locust", "via": self.options.via, "k": k, "ef_search": ef_search or "server"}
        rows = self.pg.execute(
            "vector search",
            self.search_sql,
            (self.truth.queries[query], k),
            metric="vector_search.latency_ms",
            labels=labels,
            local_settings={"hnsw.ef_search": str(ef_search)} if ef_search else None,
        )
        # Reached only once the query had an outcome (execute() declares its latency metric likewise).
        if k >= RECALL_K:
            self.harness.tally.expect("vector_search.recall_at_10")
        if rows is not None and k >= RECALL_K:
            recall = recall_at_k([[row[0] for row in rows]], self.truth.ids[query : query + 1], RECALL_K)
            self.harness.tally.ratio("vector_search.recall_at_10", recall, 1, labels)


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class _PooledStatements:
    """The part of a connection CacheAside uses, borrowing from the pool per statement: a cache hit then
    holds no database connection, as in an application that borrows only on a miss."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def execute(self, query: str, params: Any) -> _Rows:
        with self._pool.connection() as conn:
            return _Rows(conn.execute(query, params).fetchall())

    def execute_numbered(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        """A query with $1-style placeholders, as a workload file writes them."""
        # Imported here, not at module level: psycopg must come after gevent's patching (users.py).
        from psycopg import RawCursor

        with self._pool.connection() as conn:
            return RawCursor(conn).execute(query, params).fetchall()


class CacheUser(PostgresUser):
    """The application's cache-aside reads (harness/app/cache_aside.py): profiles, and per-user search results, each
    with Zipf popularity (`--zipf-s`) that is the same for every user and worker. Each read is one request of
    type cache; whether Redis answered goes to cache.hit_rate_pct.

    With a workload file's `cache:` section (setting `workload`), both tasks read the team's configured reads
    instead, in equal shares, each id drawn with the same Zipf popularity from its column."""

    abstract = True

    def on_start(self) -> None:
        super().on_start()
        self.reads = self.harness.cache_reads()
        skew = float(self.options.zipf_s)
        self.labels: dict[str, str | int | float] = {"source": "locust", "zipf_s": skew}
        rng = np.random.default_rng()
        if self.reads:
            self.statements = _PooledStatements(self.harness.pool())
            self.cache = CacheAside(self.harness.redis(), self.statements)
            self.read_keys = [
                self.harness.zipf(f"cache:{r.name}", self.harness.cache_ids(r), skew).child(int(rng.integers(2**31)))
                for r in self.reads
            ]
            self.picker = rng
            return
        users, self.tenants = self.harness.population()
        self.users = users
        self.queries = self.harness.ground_truth().queries
        seeds = rng.integers(0, 2**31, size=2)
        self.profiles = self.harness.zipf("profiles", users, skew).child(int(seeds[0]))
        # A search result is cached per (user, query): the key space is users x queries.
        pairs = np.arange(len(users) * len(self.queries))
        self.searches = self.harness.zipf("searches", pairs, skew).child(int(seeds[1]))
        self.cache = CacheAside(self.harness.redis(), _PooledStatements(self.harness.pool()))

    def read_configured(self) -> None:
        i = int(self.picker.integers(len(self.reads)))
        read, entity = self.reads[i], self.read_keys[i].sample(1)[0].item()
        self._read(
            read.name,
            lambda: self.cache.read_through(
                read.key_for(entity),
                read.ttl_s,
                lambda: [list(r) for r in self.statements.execute_numbered(read.query, (entity,))],
            ),
        )

    def read_profile(self) -> None:
        if self.reads:
            self.read_configured()
            return
        user = int(self.profiles.sample(1)[0])
        self._read("profile", lambda: self.cache.profile(user))

    def read_search(self) -> None:
        if self.reads:
            self.read_configured()
            return
        pair = int(self.searches.sample(1)[0])
        user = int(self.users[pair // len(self.queries)])
        embedding = self.queries[pair % len(self.queries)]
        self._read("search", lambda: self.cache.search(user, self.tenants[user], embedding))

    def _read(self, name: str, read: Callable[[], Any]) -> None:
        tally = self.harness.tally
        hits_before = self.cache.counters.hits
        with timed_request(self, "cache", name) as outcome:
            outcome.value = read()
        tally.expect("cache.hit_rate_pct")
        if outcome.exception is None:
            tally.rate("cache.hit_rate_pct", self.cache.counters.hits - hits_before, 1, self.labels)


def clone_user_on_pool(pool: Any, source: int) -> int:
    """harness.app.clones.clone_user on a connection of `pool`, in a transaction of its own."""
    with pool.connection() as conn, conn.transaction():
        return clones.clone_user(conn, source, tag="locust")


def discard_clone_on_pool(pool: Any, clone: int) -> None:
    """harness.app.clones.discard_clone on a connection of `pool`, in a transaction of its own."""
    with pool.connection() as conn, conn.transaction():
        clones.discard_clone(conn, clone)


class GdprUser(LambdaUser, PostgresUser):
    """Data-subject requests through the GDPR functions (functions/README.md). A deletion erases a fresh
    clone of a seeded user, never the seeded data, and is refused against an external deployment unless
    HARNESS_ALLOW_DESTRUCTIVE=1."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = np.random.default_rng()

    def on_start(self) -> None:
        super().on_start()
        self.users, _ = self.harness.population()

    def export(self) -> None:
        self.lambdas.invoke("data_export", {"user_id": int(self.rng.choice(self.users))})

    def delete(self) -> None:
        require_destructive_allowed(self.harness.stack(), "a GDPR deletion load", self.harness.settings)
        # Cloning is set-up, not the request under test: it is not timed.
        pool = self.harness.pool()
        clone = clone_user_on_pool(pool, int(self.rng.choice(self.users)))
        deleted = None
        try:
            deleted = self.lambdas.invoke("data_deletion", {"user_id": clone})
        finally:
            # Also when the run stops this user mid-request: the clone must not outlive the run.
            if deleted is None:
                discard_clone_on_pool(pool, clone)

    def audit(self) -> None:
        subjects = self.rng.choice(self.users, size=int(self.options.audit_batch))
        events = [
            {"actor": "locust", "action": "profile.view", "subject_user_id": int(user), "details": {"i": i}}
            for i, user in enumerate(subjects)
        ]
        self.lambdas.invoke("audit_logging", {"events": events})


# The GDPR request mix, audit batch : export : deletion = 20 : 3 : 1: the application writes audit batches
# all the time, users ask for their data now and then, and deletions are rarer still. Stated once so every
# locustfile sending GDPR requests sends the same mix: `tasks = GDPR_TASK_MIX` in a GdprUser subclass.
GDPR_TASK_MIX: dict[Callable[[GdprUser], None], int] = {GdprUser.audit: 20, GdprUser.export: 3, GdprUser.delete: 1}
