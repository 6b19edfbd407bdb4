"""The AWS metrics published from resource samples: names, namespaces, dimensions, units, counters as
differences between ticks, the hit rate only when there were reads, proxy figures at most every few seconds."""

import pytest

from harness.measure.sampling import Sample
from harness.monitoring.publish import PROXY_INTERVAL_S, AwsMetricPublisher


def publisher(make_endpoints, proxy=None):
    sent: list[tuple[str, list[dict]]] = []
    stack = make_endpoints(facts={"postgres": {"memory_bytes": 1 << 30, "vcpus": 2}, "redis": {"vcpus": 2}})
    pub = AwsMetricPublisher(
        stack,
        put=lambda namespace, data: sent.append((namespace, data)),
        proxy_reader=proxy or (lambda: {"ClientConnections": 40.0, "DatabaseConnections": 9.0}),
    )
    return pub, sent


def values(sent, namespace: str) -> dict[tuple[str, tuple], list[tuple[float, str]]]:
    found: dict[tuple[str, tuple], list[tuple[float, str]]] = {}
    for ns, data in sent:
        if ns == namespace:
            for d in data:
                dims = tuple((x["Name"], x["Value"]) for x in d["Dimensions"])
                found.setdefault((d["MetricName"], dims), []).append((d["Value"], d["Unit"]))
    return found


TICK = {
    "postgres.cpu_pct": 65.0,
    "postgres.memory_bytes": float(300 << 20),
    "pg.connections": 12.0,
    "pg.io_reads": 1000.0,
    "pg.io_writes": 10.0,
    "pg.database_bytes": float(1 << 30),
    "redis.cpu_pct": 10.0,
    "redis.keyspace_hits": 100.0,
    "redis.keyspace_misses": 50.0,
    "redis.evicted_keys": 0.0,
    "redis.used_memory": 100.0,
    "redis.maxmemory": 400.0,
    "redis.connected_clients": 3.0,
}


def test_rds_and_elasticache_metrics_carry_aws_names_dimensions_and_units(make_endpoints):
    pub, sent = publisher(make_endpoints)
    pub(Sample(1000.0, dict(TICK)))
    later = dict(TICK) | {"pg.io_reads": 1500.0, "redis.keyspace_hits": 130.0, "redis.keyspace_misses": 60.0}
    pub(Sample(1002.0, later))
    rds = values(sent, "AWS/RDS")
    db = (("DBInstanceIdentifier", "dbunit-postgres"),)
    assert rds[("CPUUtilization", db)][0] == (65.0, "Percent")
    assert rds[("DatabaseConnections", db)][0] == (12.0, "Count")
    assert rds[("FreeableMemory", db)][0] == (float((1 << 30) - (300 << 20)), "Bytes")
    assert rds[("FreeStorageSpace", db)][0] == (float(19 << 30), "Bytes")
    # Counters become rates between ticks: 500 reads in 2 s; none on the first tick.
    assert rds[("ReadIOPS", db)] == [(250.0, "Count/Second")]
    assert rds[("ClientConnections", (("ProxyName", "dbunit-proxy"),))] == [(40.0, "Count")]
    cache = values(sent, "AWS/ElastiCache")
    node = (("CacheClusterId", "dbunit-redis"), ("CacheNodeId", "0001"))
    assert cache[("CacheHits", node)] == [(30.0, "Count")]
    assert cache[("CacheMisses", node)] == [(10.0, "Count")]
    assert cache[("CacheHitRate", node)] == [(75.0, "Percent")]
    assert cache[("DatabaseMemoryUsagePercentage", node)][0] == (25.0, "Percent")
    assert cache[("EngineCPUUtilization", node)][0] == (20.0, "Percent")


def test_no_reads_means_no_hit_rate_datapoint(make_endpoints):
    pub, sent = publisher(make_endpoints)
    pub(Sample(1000.0, dict(TICK)))
    pub(Sample(1001.0, dict(TICK)))
    assert ("CacheHitRate", (("CacheClusterId", "dbunit-redis"), ("CacheNodeId", "0001"))) not in values(
        sent, "AWS/ElastiCache"
    )


def test_proxy_figures_are_read_at_most_every_few_seconds(make_endpoints):
    calls = []
    pub, _ = publisher(make_endpoints, proxy=lambda: calls.append(1) or {"ClientConnections": 1.0})
    for i in range(10):
        pub(Sample(1000.0 + i * 0.5, dict(TICK)))
    assert len(calls) == pytest.approx(5.0 / PROXY_INTERVAL_S + 1, abs=1)


def test_a_failing_put_is_recorded_once_and_never_raises(make_endpoints):
    stack = make_endpoints(facts={})

    def refuse(namespace, data):
        raise OSError("emulator down")

    pub = AwsMetricPublisher(stack, put=refuse, proxy_reader=lambda: {})
    pub(Sample(1.0, dict(TICK)))
    pub(Sample(2.0, dict(TICK)))
    assert pub.failures == ["PutMetricData AWS/RDS: emulator down", "PutMetricData AWS/ElastiCache: emulator down"]


def test_cpu_credit_metrics_go_out_under_aws_names_with_surplus_charged_per_tick(make_endpoints):
    pub, sent = publisher(make_endpoints)
    credits = {
        "postgres.CPUCreditUsage": 0.02,
        "postgres.CPUCreditBalance": 140.0,
        "postgres.CPUSurplusCreditBalance": 0.0,
        "postgres.CPUSurplusCreditsCharged": 3.0,
        "redis.CPUCreditUsage": 0.01,
        "redis.CPUCreditBalance": 280.0,
    }
    pub(Sample(1000.0, dict(TICK) | credits))
    pub(Sample(1001.0, dict(TICK) | credits | {"postgres.CPUSurplusCreditsCharged": 3.5}))
    rds = values(sent, "AWS/RDS")
    db = (("DBInstanceIdentifier", "dbunit-postgres"),)
    assert rds[("CPUCreditUsage", db)] == [(0.02, "Count"), (0.02, "Count")]
    assert rds[("CPUCreditBalance", db)][0] == (140.0, "Count")
    assert rds[("CPUSurplusCreditBalance", db)][0] == (0.0, "Count")
    # The ledger's running total becomes what each tick added, so a 5-minute Sum is the period's charge.
    assert rds[("CPUSurplusCreditsCharged", db)] == [(0.5, "Count")]
    cache = values(sent, "AWS/ElastiCache")
    node = (("CacheClusterId", "dbunit-redis"), ("CacheNodeId", "0001"))
    assert cache[("CPUCreditBalance", node)][0] == (280.0, "Count")
    assert ("CPUSurplusCreditBalance", node) not in cache
