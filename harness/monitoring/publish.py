"""Publish what AWS would emit for the unit, from the harness's resource samples, to the stack's CloudWatch.

AWS/RDS per DBInstanceIdentifier (CPUUtilization, DatabaseConnections, FreeableMemory, ReadIOPS,
WriteIOPS, FreeStorageSpace), RDS Proxy per ProxyName (ClientConnections, DatabaseConnections,
QueryDatabaseResponseLatency from PgBouncer's SHOW POOLS / SHOW STATS) and AWS/ElastiCache per
CacheClusterId/CacheNodeId (CPUUtilization, EngineCPUUtilization, CacheHits, CacheMisses, CacheHitRate,
CurrConnections, Evictions, DatabaseMemoryUsagePercentage). AWS/Lambda comes from the Lambda runtime.

Use as the sampler's listener: `ResourceSampler(stack, on_sample=AwsMetricPublisher(stack))`. Each tick
becomes one PutMetricData call (high resolution, so 10-second drill alarms see every point). Counters
(hits, misses, evictions, I/O operations) are published as the difference since the previous tick, as
CloudWatch's Sum over a period would count them.

The CPU-credit metrics (AWS/RDS CPUCreditUsage, CPUCreditBalance, CPUSurplusCreditBalance,
CPUSurplusCreditsCharged; AWS/ElastiCache CPUCreditUsage, CPUCreditBalance) come from the sampler's credit
ledgers (harness/model/credits.py): usage and surplus charged as what each tick added, so CloudWatch's
5-minute Sum counts them; balances as they stand. FreeStorageSpace assumes the document's 20 GiB allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.endpoints import StackEndpoints
from harness.measure.sampling import Sample
from harness.monitoring.catalog import CREDIT_METRICS, Resources
from harness.monitoring.deploy import CLIENT_CONFIG
from harness.services.pgbouncer_admin import ProxyAdminUnavailable, pools, stats

# The document's RDS storage: 20 GiB gp2.
ALLOCATED_STORAGE_BYTES = 20 * 1024**3
# SHOW POOLS / SHOW STATS open a console connection: once every few seconds is plenty for 60 s periods.
PROXY_INTERVAL_S = 5.0

Datum = dict[str, Any]


def _datum(name: str, value: float, unit: str, dimensions: list[dict[str, str]], t: float) -> Datum:
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": t,
        "Value": float(value),
        "Unit": unit,
        "StorageResolution": 1,
    }


class AwsMetricPublisher:
    def __init__(
        self,
        stack: StackEndpoints,
        resources: Resources | None = None,
        put: Callable[[str, list[Datum]], None] | None = None,
        proxy_reader: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.stack = stack
        self.resources = resources or Resources()
        facts = stack.facts
        self.memory_bytes = float(
            (facts.get("cgroup") or {}).get("memory_limit_bytes") or facts.get("postgres", {}).get("memory_bytes") or 0
        )
        self.cache_vcpus = float(facts.get("redis", {}).get("vcpus") or 2)
        self._put = put or self._put_metric_data
        self._proxy_reader = proxy_reader if proxy_reader is not None else self._read_proxy
        self._client: Any = None
        self._previous: dict[str, tuple[float, float]] = {}
        self._last_proxy = 0.0
        self.published = 0
        self.failures: list[str] = []

    def _put_metric_data(self, namespace: str, data: list[Datum]) -> None:
        if self._client is None:
            from botocore.config import Config

            self._client = self.stack.aws.client("cloudwatch", config=Config(**CLIENT_CONFIG))
        self._client.put_metric_data(Namespace=namespace, MetricData=data)

    def _delta(self, key: str, sample: Sample) -> tuple[float, float] | None:
        """(increase, seconds) of a cumulative counter since the previous tick; None on the first."""
        if key not in sample.values:
            return None
        now = (sample.t, sample.values[key])
        previous, self._previous[key] = self._previous.get(key), now
        if previous is None:
            return None
        return max(0.0, now[1] - previous[1]), max(now[0] - previous[0], 1e-6)

    def rds(self, sample: Sample) -> list[Datum]:
        v, t = sample.values, sample.t
        dims = [{"Name": "DBInstanceIdentifier", "Value": self.resources.db_instance}]
        data = []
        if "postgres.cpu_pct" in v:
            data.append(_datum("CPUUtilization", min(100.0, v["postgres.cpu_pct"]), "Percent", dims, t))
        if "pg.connections" in v:
            data.append(_datum("DatabaseConnections", v["pg.connections"], "Count", dims, t))
        # The limit the server's own account holds (a container's), else the instance's memory.
        memory = v.get("postgres.memory_limit_bytes") or self.memory_bytes
        if "postgres.memory_bytes" in v and memory:
            data.append(_datum("FreeableMemory", max(0.0, memory - v["postgres.memory_bytes"]), "Bytes", dims, t))
        if "pg.database_bytes" in v:
            free = max(0.0, ALLOCATED_STORAGE_BYTES - v["pg.database_bytes"])
            data.append(_datum("FreeStorageSpace", free, "Bytes", dims, t))
        for key, name in (("pg.io_reads", "ReadIOPS"), ("pg.io_writes", "WriteIOPS")):
            delta = self._delta(key, sample)
            if delta is not None:
                data.append(_datum(name, delta[0] / delta[1], "Count/Second", dims, t))
        return data + self.credits("postgres", "rds", sample, dims)

    def credits(self, service: str, kind: str, sample: Sample, dims: list[dict[str, str]]) -> list[Datum]:
        """The ledger's figures for `service` under CloudWatch's credit metric names."""
        data = []
        for name in CREDIT_METRICS[kind]:
            key = f"{service}.{name}"
            if name == "CPUSurplusCreditsCharged":
                # The ledger keeps it cumulative; a period's Sum must count only what the period added.
                delta = self._delta(key, sample)
                if delta is not None:
                    data.append(_datum(name, delta[0], "Count", dims, sample.t))
            elif key in sample.values:
                data.append(_datum(name, sample.values[key], "Count", dims, sample.t))
        return data

    def cache(self, sample: Sample) -> list[Datum]:
        v, t = sample.values, sample.t
        dims = [
            {"Name": "CacheClusterId", "Value": self.resources.cache_cluster},
            {"Name": "CacheNodeId", "Value": self.resources.cache_node},
        ]
        data = []
        if "redis.cpu_pct" in v:
            host = min(100.0, v["redis.cpu_pct"])
            data.append(_datum("CPUUtilization", host, "Percent", dims, t))
            # Redis runs its engine on one thread: the engine's share of one core.
            data.append(_datum("EngineCPUUtilization", min(100.0, host * self.cache_vcpus), "Percent", dims, t))
        hits = self._delta("redis.keyspace_hits", sample)
        misses = self._delta("redis.keyspace_misses", sample)
        if hits is not None and misses is not None:
            data.append(_datum("CacheHits", hits[0], "Count", dims, t))
            data.append(_datum("CacheMisses", misses[0], "Count", dims, t))
            if hits[0] + misses[0] > 0:
                data.append(_datum("CacheHitRate", 100.0 * hits[0] / (hits[0] + misses[0]), "Percent", dims, t))
        evictions = self._delta("redis.evicted_keys", sample)
        if evictions is not None:
            data.append(_datum("Evictions", evictions[0], "Count", dims, t))
        if "redis.connected_clients" in v:
            data.append(_datum("CurrConnections", v["redis.connected_clients"], "Count", dims, t))
        if v.get("redis.maxmemory"):
            used = 100.0 * v["redis.used_memory"] / v["redis.maxmemory"]
            data.append(_datum("DatabaseMemoryUsagePercentage", used, "Percent", dims, t))
        return data + self.credits("redis", "cache", sample, dims)

    def _read_proxy(self) -> dict[str, float]:
        found = pools(self.stack)
        database = self.stack.proxy.dbname
        figures = {
            "ClientConnections": float(sum(int(p["cl_active"]) + int(p["cl_waiting"]) for p in found)),
            "DatabaseConnections": float(
                sum(int(p["sv_active"]) + int(p["sv_idle"]) + int(p["sv_used"]) for p in found)
            ),
        }
        for row in stats(self.stack):
            if row.get("database") == database:
                figures["QueryDatabaseResponseLatency"] = float(row["avg_query_time"])
        return figures

    def proxy(self, sample: Sample) -> list[Datum]:
        if sample.t - self._last_proxy < PROXY_INTERVAL_S:
            return []
        self._last_proxy = sample.t
        try:
            figures = self._proxy_reader()
        except (ProxyAdminUnavailable, Exception) as exc:
            self._fail(f"proxy figures: {exc}")
            return []
        dims = [{"Name": "ProxyName", "Value": self.resources.proxy}]
        units = {"QueryDatabaseResponseLatency": "Microseconds"}
        return [_datum(name, value, units.get(name, "Count"), dims, sample.t) for name, value in figures.items()]

    def _fail(self, message: str) -> None:
        if message not in self.failures:
            self.failures.append(message)

    def __call__(self, sample: Sample) -> None:
        for namespace, data in (
            ("AWS/RDS", self.rds(sample) + self.proxy(sample)),
            ("AWS/ElastiCache", self.cache(sample)),
        ):
            if not data:
                continue
            try:
                self._put(namespace, data)
                self.published += len(data)
            except Exception as exc:
                self._fail(f"PutMetricData {namespace}: {exc}")
