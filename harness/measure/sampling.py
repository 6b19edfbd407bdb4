"""Resource sampling while a load runs: CPU and memory of the servers, PostgreSQL connection counts and
disk I/O, Redis INFO counters, and the CPU-credit ledgers fed by the measured CPU. One background thread,
one sample per interval.

A server's CPU and memory come from whichever account keeps them (`ServerUsage`): the embedded stack's
process trees, or the compose stack's containers, read from their cgroups (harness/services/containers.py).

CPU is expressed as CloudWatch does for the instance: percent of the instance class's vCPUs (a
db.t3.micro's 2), so it can be judged against the document's 70/90 % thresholds. Credit figures go
under CloudWatch's names (`redis.CPUCreditBalance`, ...). With cpu_credits = live the sampler is also
the governor: it moves the cache node's CPU cap and the volume's IOPS cap as the ledgers empty and refill.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
from redis.exceptions import RedisError

from harness.endpoints import StackEndpoints
from harness.model import credits as cr
from harness.services.cgroups import CgroupLimiter
from harness.services.containers import ContainerUnreadable, compose_containers
from harness.services.process import PidFiles
from harness.sizing import cache_node_type, db_instance_class, storage_sizing


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


class ServerUsage(Protocol):
    """What the samplers read of one server, whichever account keeps it: CPU seconds used so far and memory in
    use; the limits where the account holds them (a container's cgroup), None where it does not."""

    def cpu_seconds(self) -> float: ...

    def memory_bytes(self) -> float: ...

    def vcpus(self) -> float | None: ...

    def memory_limit_bytes(self) -> float | None: ...


class ProcessTreeUsage:
    """A local server's process tree: the embedded stack's account. Its CPU counts live processes only (a
    backend that exits takes its CPU time with it, so keep connections open across a measurement)."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return [self.root]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def memory_bytes(self) -> float:
        total = 0
        for proc in self._tree():
            try:
                # Shared buffers are counted once per backend in RSS; USS would be exact but costs a
                # /proc/smaps walk per process per tick.
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return float(total)

    def vcpus(self) -> float | None:
        return None

    def memory_limit_bytes(self) -> float | None:
        return None


def server_usage(endpoints: StackEndpoints) -> tuple[dict[str, ServerUsage], str]:
    """Each server's account by service name, and why there is none: the embedded stack's process trees, the
    compose stack's containers; nothing for a deployment the harness did not start."""
    facts = endpoints.facts
    if endpoints.backend == "compose" and facts.get("project"):
        try:
            return dict(compose_containers(str(facts["project"]))), ""
        except ContainerUnreadable as exc:
            return {}, f"the compose containers' accounting is unreadable: {exc}"
    state_dir = facts.get("state_dir")
    if endpoints.backend != "embedded" or not state_dir:
        return {}, f"no server the harness can account for on the {endpoints.backend} backend"
    found: dict[str, ServerUsage] = {}
    for record in PidFiles(Path(state_dir) / "run").all():
        proc = record.process()
        if proc is not None:
            found[record.name] = ProcessTreeUsage(proc)
    return found, "" if found else "no local server processes running"


def server_cpu_seconds(endpoints: StackEndpoints) -> dict[str, float]:
    """CPU seconds each server has used so far, by service name; empty where none can be read."""
    return {name: usage.cpu_seconds() for name, usage in server_usage(endpoints)[0].items()}


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
        self._servers: dict[str, ServerUsage] = {}
        self._last_cpu: dict[str, float] = {}
        # Per server, the CPU limit its own account holds (a container's quota), read each tick.
        self._held_vcpus: dict[str, float | None] = {}
        self._last_tick = 0.0
        self._db: Any = None
        self._redis: Any = None
        self._redis_gaps = 0
        credit_facts = facts.get("credits") or {}
        self.credit_mode: str = credit_facts.get("mode", "off")
        self.ledgers: dict[str, cr.CpuCreditLedger] = {}
        self._governed: dict[str, CgroupLimiter] = {}
        self._groups: dict[str, CgroupLimiter] = {}
        self._io: tuple[CgroupLimiter, str, cr.IoCreditLedger] | None = None
        self._last_ios: tuple[int, int] | None = None
        self._credit_facts = credit_facts

    def _ledger_path(self, service: str) -> Path:
        return Path(self.endpoints.facts["state_dir"]) / f"credits-{service}.json"

    def _io_bucket_path(self) -> Path:
        return Path(self.endpoints.facts["state_dir"]) / "credits-postgres-io.json"

    def _set_iops(self, iops: int) -> None:
        """Move the volume's IOPS cap, keeping its throughput cap (the instance's EBS link)."""
        if self._io is None:
            return
        limiter, device, _ = self._io
        with contextlib.suppress(OSError):
            limiter.set_io_limits(device, iops, limiter.io_limits(device).get("read_bps") or None)

    def _open_ledgers(self) -> None:
        """One ledger per burstable instance; live ledgers continue from where the last run left them."""
        facts = self.endpoints.facts
        classes = {
            "postgres": db_instance_class(facts["postgres"]["instance_class"]).credits,
            "redis": cache_node_type(facts["redis"]["node_type"]).credits,
        }
        now = time.time()
        for service, model in classes.items():
            if model is None or service not in self._servers:
                continue
            self.ledgers[service] = cr.load_ledger(
                self._ledger_path(service), model, self.credit_mode, now, self._credit_facts.get("start_balance")
            )
            group = self._credit_facts.get(f"{service}_cgroup")
            if group:
                self.attach_cgroup(service, CgroupLimiter(group), governed=self.credit_mode == "live")
        storage = self._credit_facts.get("storage") or {}
        group = self._credit_facts.get("postgres_cgroup")
        if group and storage.get("device"):
            limiter = CgroupLimiter(group)
            sizing = storage_sizing(storage["type"], int(storage["allocated_gib"]))
            bucket = cr.load_io_bucket(self._io_bucket_path(), sizing, self.credit_mode, now)
            self._io = (limiter, storage["device"], bucket)
            self._last_ios = limiter.io_serviced(storage["device"])
            if self.credit_mode == "live":
                # A bucket the last run emptied holds the volume at its baseline from the first sample.
                self._set_iops(bucket.allowed_iops)

    def attach_cgroup(self, service: str, group: CgroupLimiter, governed: bool) -> None:
        """The cgroup a service's CPU cap is read back from; governed, its quota follows the ledger's cap too."""
        self._groups[service] = group
        if governed:
            self._governed[service] = group
            group.set_cpu_limit(self.ledgers[service].cap_vcpus)

    def book_credits(self, values: dict[str, float], service: str, wall: float, cpu_seconds: float) -> None:
        """Charge `cpu_seconds` over `wall` seconds to the service's ledger, move a governed cap, and put the
        credit metrics in `values`."""
        ledger = self.ledgers.get(service)
        if ledger is None:
            return
        was_capped = ledger.cap_vcpus
        step = ledger.step(wall, cpu_seconds)
        values[f"{service}.{cr.CREDIT_USAGE}"] = step.spent
        values[f"{service}.{cr.CREDITS_EARNED}"] = step.earned
        values[f"{service}.{cr.CREDIT_BALANCE}"] = step.balance
        values[f"{service}.{cr.SURPLUS_BALANCE}"] = step.surplus_balance
        values[f"{service}.{cr.SURPLUS_CHARGED}"] = step.surplus_charged
        governed = self._governed.get(service)
        if governed is not None and step.cap_vcpus != was_capped:
            governed.set_cpu_limit(step.cap_vcpus)
        # The cap in force, read back from the kernel where a group holds it (drained keeps the cache node
        # at its baseline for the whole run) or from the server's own account (a container's quota); the
        # ledger's own cap where nothing enforces it.
        group = self._groups.get(service)
        enforced = group.cpu_limit()[0] if group is not None else self._held_vcpus.get(service)
        values[f"{service}.{cr.CPU_CAP}"] = enforced if enforced is not None else step.cap_vcpus

    def _book_io(self, values: dict[str, float], wall: float) -> None:
        if self._io is None:
            return
        limiter, device, ledger = self._io
        now = limiter.io_serviced(device)
        if now is None or self._last_ios is None:
            return
        reads, writes = now[0] - self._last_ios[0], now[1] - self._last_ios[1]
        self._last_ios = now
        values["postgres.read_iops"] = reads / wall
        values["postgres.write_iops"] = writes / wall
        allowed = ledger.allowed_iops
        step = ledger.step(wall, float(reads + writes))
        values["postgres.BurstBalance"] = (
            100.0 * step.balance / ledger.storage.io_credits_max if ledger.storage.bursts else 100.0
        )
        if self.credit_mode == "live" and step.allowed_iops != allowed:
            self._set_iops(step.allowed_iops)

    def _open(self) -> None:
        self._servers, why = server_usage(self.endpoints)
        if not self._servers:
            self.result.unavailable["process"] = why
        for name, usage in self._servers.items():
            with contextlib.suppress(ContainerUnreadable):
                self._last_cpu[name] = usage.cpu_seconds()
        try:
            self._open_ledgers()
        except (KeyError, ValueError, OSError) as exc:
            self.result.unavailable["credits"] = f"credit ledgers not kept: {exc}"
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
        for name, usage in self._servers.items():
            try:
                cpu, memory, limit = usage.cpu_seconds(), usage.memory_bytes(), usage.memory_limit_bytes()
                self._held_vcpus[name] = usage.vcpus()
            except ContainerUnreadable as exc:
                # A container a drill stopped leaves a gap in its series; the others keep going.
                self.result.unavailable[name] = str(exc)
                continue
            previous, self._last_cpu[name] = self._last_cpu.get(name), cpu
            if previous is None:
                continue
            delta = max(0.0, cpu - previous)
            # Of the instance's vCPUs, as CloudWatch reports CPUUtilization, whatever cap holds it below them.
            vcpus = self.db_vcpus if name == "postgres" else self.cache_vcpus if name == "redis" else 1.0
            values[f"{name}.cpu_pct"] = 100.0 * delta / (wall * vcpus)
            values[f"{name}.memory_bytes"] = memory
            if limit is not None:
                values[f"{name}.memory_limit_bytes"] = limit
            self.book_credits(values, name, wall, delta)
        self._book_io(values, wall)
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
            try:
                stats = self._redis.info("stats")
                memory = self._redis.info("memory")
                clients = self._redis.info("clients")
            except RedisError as exc:
                # A cache that is down (a drill killed it) leaves gaps in its series; the database's keep going.
                self.result.unavailable["redis"] = f"Redis unreachable in {self._redis_gaps + 1} sample(s): {exc}"
                self._redis_gaps += 1
            else:
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
            if self.credit_mode == "live":
                for service, ledger in self.ledgers.items():
                    cr.save_ledger(self._ledger_path(service), ledger, time.time())
                if self._io is not None and self._io[2].storage.bursts:
                    cr.save_io_bucket(self._io_bucket_path(), self._io[2], time.time())
            for closer in (self._db, self._redis):
                if closer is not None:
                    closer.close()

    def _tick_final(self) -> None:
        # The last partial interval still counts: a short run would otherwise have no sample at all.
        try:
            self._tick()
        except Exception as exc:
            self.result.unavailable["tick"] = f"sampling failed: {exc}"
