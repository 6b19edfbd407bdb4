"""Resource sampling while a load runs: CPU and memory of the local server processes, PostgreSQL
connection counts, Redis INFO counters. One background thread, one sample per interval.

CPU is expressed as CloudWatch does for the instance: percent of the instance class's vCPUs (a
db.t3.micro's 2), so it can be judged against the document's 70/90 % thresholds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.endpoints import StackEndpoints
from harness.services.process import PidFiles


@dataclass
class Sample:
    t: float
    values: dict[str, float]


@dataclass
class Samples:
    """What a sampler saw: one dict of figures per tick, plus the sources it could not read."""

    samples: list[Sample] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def series(self, key: str) -> list[tuple[float, float]]:
        return [(s.t, s.values[key]) for s in self.samples if key in s.values]

    def peak(self, key: str) -> float:
        values = [v for _, v in self.series(key)]
        if not values:
            raise KeyError(f"no samples of {key!r} (unavailable: {self.unavailable.get(key, 'never sampled')})")
        return max(values)


def local_service_processes(endpoints: StackEndpoints) -> dict[str, psutil.Process]:
    """The embedded stack's server processes by service name; empty for stacks we did not start."""
    state_dir = endpoints.facts.get("state_dir")
    if endpoints.backend != "embedded" or not state_dir:
        return {}
    found = {}
    for record in PidFiles(Path(state_dir) / "run").all():
        proc = record.process()
        if proc is not None:
            found[record.name] = proc
    return found


class _TreeCpu:
    """CPU seconds of a process and its children between two readings."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.last: float | None = None

    def _total(self) -> float:
        total = 0.0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def delta(self) -> float | None:
        now = self._total()
        previous, self.last = self.last, now
        return None if previous is None else max(0.0, now - previous)

    def rss(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                # Shared buffers are counted once per backend in RSS; USS would be exact but costs a
                # /proc/smaps walk per process per tick.
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total


class ResourceSampler:
    """Use as a context manager around a load run: `with ResourceSampler(stack) as sampler: ...`."""

    def __init__(
        self,
        endpoints: StackEndpoints,
        interval_s: float = 1.0,
        max_samples: int = 100_000,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self.endpoints = endpoints
        # Called on the sampler's thread after each tick (e.g. to publish CloudWatch metrics); an exception
        # there is recorded under "on_sample" and never stops the sampling.
        self.on_sample = on_sample
        self.interval_s = interval_s
        self.max_samples = max_samples
        self.result = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)
        facts = endpoints.facts
        self.db_vcpus = float(facts.get("postgres", {}).get("vcpus") or 2)
        self.cache_vcpus = float(facts.get("redis", {}).get("vcpus") or 2)
        self._cpu: dict[str, _TreeCpu] = {}
        self._last_tick = 0.0
        self._db: Any = None
        self._redis: Any = None

    def _open(self) -> None:
        processes = local_service_processes(self.endpoints)
        if not processes:
            self.result.unavailable["process"] = "no local server processes (not an embedded stack)"
        self._cpu = {name: _TreeCpu(proc) for name, proc in processes.items()}
        for tree in self._cpu.values():
            tree.delta()
        self._last_tick = time.monotonic()
        try:
            self._db = self.endpoints.direct.connect(autocommit=True, prepare_threshold=None)
            self._max_connections = int(self._db.execute("SHOW max_connections").fetchone()[0])
        except Exception as exc:
            self.result.unavailable["pg"] = f"cannot query PostgreSQL directly: {exc}"
        try:
            self._redis = self.endpoints.redis.client()
            self._redis.ping()
        except Exception as exc:
            self._redis = None
            self.result.unavailable["redis"] = f"cannot query Redis: {exc}"

    def _tick(self) -> None:
        now = time.monotonic()
        wall = max(now - self._last_tick, 1e-6)
        self._last_tick = now
        values: dict[str, float] = {}
        for name, tree in self._cpu.items():
            delta = tree.delta()
            if delta is None:
                continue
            vcpus = self.db_vcpus if name == "postgres" else self.cache_vcpus if name == "redis" else 1.0
            values[f"{name}.cpu_pct"] = 100.0 * delta / (wall * vcpus)
            values[f"{name}.rss_bytes"] = float(tree.rss())
        if self._db is not None:
            row = self._db.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity "
                "WHERE backend_type = 'client backend'"
            ).fetchone()
            values["pg.connections"] = float(row[0])
            values["pg.active_connections"] = float(row[1])
            values["pg.connections_pct"] = 100.0 * row[0] / self._max_connections
            # Cumulative read and write operations (PostgreSQL 16+), the nearest to RDS's Read/WriteIOPS.
            if "pg_io" not in self.result.unavailable:
                try:
                    io = self._db.execute(
                        "SELECT coalesce(sum(reads), 0), coalesce(sum(writes), 0), "
                        "(SELECT sum(pg_database_size(oid)) FROM pg_database) FROM pg_stat_io"
                    ).fetchone()
                    values["pg.io_reads"] = float(io[0])
                    values["pg.io_writes"] = float(io[1])
                    values["pg.database_bytes"] = float(io[2])
                except Exception as exc:
                    self.result.unavailable["pg_io"] = f"pg_stat_io unreadable (PostgreSQL 16+ has it): {exc}"
        if self._redis is not None:
            stats = self._redis.info("stats")
            memory = self._redis.info("memory")
            clients = self._redis.info("clients")
            values["redis.keyspace_hits"] = float(stats["keyspace_hits"])
            values["redis.keyspace_misses"] = float(stats["keyspace_misses"])
            values["redis.evicted_keys"] = float(stats["evicted_keys"])
            values["redis.used_memory"] = float(memory["used_memory"])
            values["redis.maxmemory"] = float(memory.get("maxmemory", 0))
            values["redis.connected_clients"] = float(clients["connected_clients"])
        sample = Sample(time.time(), values)
        self.result.samples.append(sample)
        if self.on_sample is not None:
            try:
                self.on_sample(sample)
            except Exception as exc:
                self.result.unavailable["on_sample"] = f"sample listener failed: {exc}"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s) and len(self.result.samples) < self.max_samples:
            try:
                self._tick()
            except Exception as exc:
                self.result.unavailable["tick"] = f"sampling failed: {exc}"
                return

    @contextmanager
    def running(self) -> Iterator[Samples]:
        self._open()
        self._thread.start()
        try:
            yield self.result
        finally:
            self._stop.set()
            self._thread.join(timeout=self.interval_s + 10)
            self._tick_final()
            for closer in (self._db, self._redis):
                if closer is not None:
                    closer.close()

    def _tick_final(self) -> None:
        # The last partial interval still counts: a short run would otherwise have no sample at all.
        try:
            self._tick()
        except Exception as exc:
            self.result.unavailable["tick"] = f"sampling failed: {exc}"
