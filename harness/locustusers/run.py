"""One Locust process's share of a run: where the stack is, the clients all its users share, and its tally.

Locust runs hundreds of users as greenlets in one process; they share one connection pool, one Redis
client, one Lambda client and the workload data (ground truth, user ids, Zipf tables), each built on
first use so that nothing connects at import and a master that runs no users never connects at all.
The locks are threading locks, which gevent has patched into greenlet locks by the time this runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.app.gdpr_invoke import lambda_client
from harness.backends import get_backend
from harness.config import Settings, resolve_settings
from harness.data.app_role import app_endpoint, data_root
from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import GroundTruth
from harness.endpoints import StackEndpoints, bounded_connection_class
from harness.locustusers.tally import RunTotals, Tally
from harness.measure.popularity import ZipfKeys
from harness.workload.target import CacheRead, VectorTarget, load_cache_reads, load_vector_target

# Long enough for a loaded proxy, short enough that a stale endpoint file fails within a run.
POOL_OPEN_TIMEOUT_S = 10.0
# A request waits this long for a pooled connection before it fails (the application's own limit).
POOL_BORROW_TIMEOUT_S = 30.0
# A statement whose answer does not come within this fails on the client (a silent network behind the proxy
# never trips a TCP timeout: the proxy ACKs the bytes) instead of holding a Locust user forever.
REQUEST_TIMEOUT_S = 30.0
# Hot keys are the same for every user of every process: the popularity ranking is seeded.
ZIPF_SEED = 11


class AccountedFailure(Exception):
    """A failed request that a service metric already counts (a Lambda throttle or function error), so
    locust.failure_rate_pct leaves it out; Locust still shows it as a failure."""


class StackNotUpError(RuntimeError):
    """No stack to load: the message says how to start one or point at one."""


def _configure(conn: Any) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)


class HarnessRun:
    """Per-process state of a Locust run; `harness.locustusers.plugin.harness_run(environment)` gives it."""

    def __init__(self, options: Callable[[], Any]) -> None:
        # A callable, not the namespace: a worker's options are replaced when the master starts a test.
        self._options = options
        self.tally = Tally()
        self.totals = RunTotals()
        self._lock = threading.Lock()
        self._settings: Settings | None = None
        self._stack: StackEndpoints | None = None
        self._pool: Any = None
        self._redis: Any = None
        self._lambda: Any = None
        self._truth: GroundTruth | None = None
        self._target: VectorTarget | None = None
        self._cache_reads: tuple[CacheRead, ...] | None = None
        self._cache_ids: dict[str, np.ndarray] = {}
        self._population: tuple[np.ndarray, dict[int, int]] | None = None
        self._zipf: dict[tuple[str, float], ZipfKeys] = {}

    @property
    def options(self) -> Any:
        return self._options()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = resolve_settings()
        return self._settings

    def stack(self) -> StackEndpoints:
        if self._stack is None:
            endpoints = get_backend(self.settings).endpoints()
            if endpoints is None:
                raise StackNotUpError(
                    f"no running stack in {self.settings.state_dir}: start it with `harness up` (or `make up`), "
                    "or point HARNESS_STATE_DIR / HARNESS_BACKEND at one"
                )
            self._stack = endpoints
        return self._stack

    def pool(self) -> Any:
        """The process's psycopg_pool.ConnectionPool as the application role, through the proxy or direct
        (`--via`), `--pool-size` connections, opened on first use."""
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                endpoint = app_endpoint(self.stack(), self.settings.state_dir, via_proxy=self.options.via == "proxy")
                size = int(self.options.pool_size)
                pool = ConnectionPool(
                    connection_class=bounded_connection_class(REQUEST_TIMEOUT_S),
                    kwargs={
                        **endpoint.conninfo_kwargs(),
                        "connect_timeout": 10,
                        "autocommit": True,
                        # Transaction pooling hands each transaction any server connection: a statement
                        # prepared on one is unknown on the next, so psycopg must never prepare.
                        "prepare_threshold": None,
                    },
                    min_size=size,
                    max_size=size,
                    timeout=POOL_BORROW_TIMEOUT_S,
                    configure=_configure,
                    open=False,
                    name="locust",
                )
                try:
                    pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
                except Exception:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def redis(self) -> Any:
        with self._lock:
            if self._redis is None:
                self._redis = self.stack().redis.client()
            return self._redis

    def lambda_client(self) -> Any:
        with self._lock:
            if self._lambda is None:
                self._lambda = lambda_client(self.stack().aws)
            return self._lambda

    def vector_target(self) -> VectorTarget:
        """The table and column vector search queries (the `workload` setting's vector_search, else documents)."""
        with self._lock:
            if self._target is None:
                self._target = load_vector_target(self.settings.workload)
            return self._target

    def ground_truth(self) -> GroundTruth:
        """The seeded queries and their exact neighbours (`harness seed` wrote them under the state dir)."""
        target = self.vector_target()
        with self._lock:
            if self._truth is None:
                self._truth = load_current_ground_truth(
                    self.stack().direct, data_root(self.settings.state_dir), target.table, target.column
                )
            return self._truth

    def cache_reads(self) -> tuple[CacheRead, ...]:
        """The team's cached reads (the `workload` setting's cache section); () for the built-in ones."""
        with self._lock:
            if self._cache_reads is None:
                self._cache_reads = load_cache_reads(self.settings.workload)
            return self._cache_reads

    def cache_ids(self, read: CacheRead) -> np.ndarray:
        """The ids one configured read draws from, read once per process."""
        pool = self.pool()
        with self._lock:
            if read.name not in self._cache_ids:
                with pool.connection() as conn:
                    ids = np.array([r[0] for r in conn.execute(read.ids_sql).fetchall()])
                if len(ids) == 0:
                    raise StackNotUpError(f"{read.ids} holds no values: seed your data first")
                self._cache_ids[read.name] = ids
            return self._cache_ids[read.name]

    def population(self) -> tuple[np.ndarray, dict[int, int]]:
        """Seeded user ids (ascending) and each one's tenant."""
        pool = self.pool()
        with self._lock:
            if self._population is None:
                with pool.connection() as conn:
                    rows = conn.execute("SELECT user_id, tenant_id FROM users ORDER BY user_id").fetchall()
                if not rows:
                    raise StackNotUpError("the database holds no users: run `harness seed`")
                self._population = np.array([r[0] for r in rows]), {r[0]: r[1] for r in rows}
            return self._population

    def zipf(self, name: str, keys: np.ndarray, s: float) -> ZipfKeys:
        """One popularity table per key space and skew for the whole process; users take `child()`s."""
        with self._lock:
            table = self._zipf.get((name, s))
            if table is None:
                table = self._zipf[(name, s)] = ZipfKeys(keys, s, seed=ZIPF_SEED)
            return table

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self._redis is not None:
                self._redis.close()
                self._redis = None
