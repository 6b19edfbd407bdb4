"""CloudWatch as the document's post-deployment checklist asks: metrics flowing with AWS's names and
dimensions, alarms configured from the thresholds with SNS actions, the four dashboards present. It also
records the emulator's alarm states so the sign-off can compare them with CloudWatch's semantics."""

from __future__ import annotations

import time
import uuid

import pytest

from harness.measure.sampling import ResourceSampler
from harness.monitoring.alarms import alarm_definitions
from harness.monitoring.catalog import CREDIT_METRICS
from harness.monitoring.dashboards import DASHBOARDS, dashboard_bodies
from harness.monitoring.deploy import clients, describe
from harness.monitoring.evidence import dashboards_evidence, metrics_evidence, widget_has_data
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

RDS = {
    "CPUUtilization",
    "DatabaseConnections",
    "FreeableMemory",
    "ReadIOPS",
    "WriteIOPS",
    "FreeStorageSpace",
}
PROXY = {"ClientConnections", "DatabaseConnections", "QueryDatabaseResponseLatency"}
CACHE = {
    "CPUUtilization",
    "EngineCPUUtilization",
    "CacheHits",
    "CacheMisses",
    "CacheHitRate",
    "CurrConnections",
    "Evictions",
    "DatabaseMemoryUsagePercentage",
}


@pytest.fixture(scope="module")
def emulator(stack, cloudwatch):
    if cloudwatch is None:
        pytest.skip("external deployment: AWS publishes these metrics itself; nothing local to check")
    redis = stack.redis.client()
    key = f"cw:{uuid.uuid4().hex}"
    redis.set(key, "1", ex=60)
    # A few seconds of sampling with cache reads, so every metric, hit rate included, has datapoints.
    with ResourceSampler(stack, interval_s=0.5, on_sample=cloudwatch).running():
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            redis.get(key)
            redis.get(f"{key}:missing")
            time.sleep(0.01)
    redis.close()
    assert not cloudwatch.failures, cloudwatch.failures
    return clients(stack.aws)[0]


def listed(cw, namespace: str) -> dict[str, set[tuple[str, ...]]]:
    found: dict[str, set[tuple[str, ...]]] = {}
    for page in cw.get_paginator("list_metrics").paginate(Namespace=namespace):
        for metric in page["Metrics"]:
            dims = tuple(sorted(f"{d['Name']}={d['Value']}" for d in metric["Dimensions"]))
            found.setdefault(metric["MetricName"], set()).add(dims)
    return found


def test_rds_proxy_and_elasticache_metrics_are_listed_with_their_dimensions(emulator):
    rds = listed(emulator, "AWS/RDS")
    for name in RDS:
        assert ("DBInstanceIdentifier=dbunit-postgres",) in rds.get(name, set()), (name, rds.get(name))
    for name in PROXY:
        assert ("ProxyName=dbunit-proxy",) in rds.get(name, set()), (name, rds.get(name))
    cache = listed(emulator, "AWS/ElastiCache")
    for name in CACHE:
        assert ("CacheClusterId=dbunit-redis", "CacheNodeId=0001") in cache.get(name, set()), (name, cache.get(name))


def test_the_cpu_credit_metrics_are_listed_for_the_instance_and_the_node(emulator):
    rds, cache = listed(emulator, "AWS/RDS"), listed(emulator, "AWS/ElastiCache")
    for name in CREDIT_METRICS["rds"]:
        assert ("DBInstanceIdentifier=dbunit-postgres",) in rds.get(name, set()), (name, rds.get(name))
    for name in CREDIT_METRICS["cache"]:
        assert ("CacheClusterId=dbunit-redis", "CacheNodeId=0001") in cache.get(name, set()), (name, cache.get(name))


def test_the_recorded_evidence_shows_the_published_metrics_and_the_dashboards_with_data(emulator, stack):
    """What the checklist and the report read: datapoints per published metric and per dashboard widget, read
    back from the emulator over the last minute (the fixture just published every one of them)."""
    end = time.time()
    start = end - 60
    metrics = metrics_evidence(emulator, start, end, ())
    silent = [k for k, n in metrics["datapoints"].items() if not n]
    assert not silent, silent
    alarms = alarm_definitions(load_thresholds(DEFAULT_THRESHOLDS_FILE))
    recorded = dashboards_evidence(emulator, dashboard_bodies(alarms, stack.aws.region), start, end)["dashboards"]
    assert all(d["on_stack"] for d in recorded.values())
    cache = {w["title"]: widget_has_data(w) for w in recorded["dbunit-cache"]["widgets"]}
    assert cache["Cache hit rate"] and cache["Hits and misses"], cache
    network = recorded["dbunit-network"]["widgets"]
    assert all(w.get("not_emulated") or all(line.get("not_emulated") for line in w["lines"]) for w in network)


def test_every_alarmed_seed_threshold_is_an_alarm_with_sns_actions(emulator):
    expected = {a.name: a for a in alarm_definitions(load_thresholds(DEFAULT_THRESHOLDS_FILE))}
    found = {a["AlarmName"]: a for a in describe(emulator)}
    assert set(expected) <= set(found), sorted(set(expected) - set(found))
    for name, alarm in expected.items():
        actions = found[name]["AlarmActions"]
        assert actions and all(a.startswith("arn:aws:sns:") for a in actions), (name, actions)
        assert actions[0].endswith(f":dbunit-alarms-{alarm.severity}")


def test_the_four_dashboards_are_on_the_emulator(emulator):
    names = {d["DashboardName"] for d in emulator.list_dashboards()["DashboardEntries"]}
    assert {f"dbunit-{kind}" for kind in DASHBOARDS} <= names
