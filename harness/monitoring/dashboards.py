"""The document's four performance dashboards (database, cache, Lambda, network) as CloudWatch dashboard JSON.

Widgets follow "Performance Monitoring > performance_dashboards" of the seed document; each alarmed
metric carries its warning and critical levels as horizontal annotations, so the dashboard shows the
levels the team signed off on. Network widgets name VPC resources the local unit does not have: they
are exported and deployed, but no local series feeds them (the report says so).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.monitoring.alarms import PREFIX, AlarmDefinition
from harness.monitoring.catalog import CREDIT_PERIOD_S, CREDIT_STATISTICS, Resources

DASHBOARDS = ("database", "cache", "lambda", "network")
FUNCTIONS = ("data_export", "data_deletion", "audit_logging")
NOT_EMULATED = {
    "network": "NOT EMULATED: the local unit has no VPC, NAT gateway or flow logs; these widgets only show data in AWS",
}
# Widget lines no local series can feed, and why.
NOT_EMULATED_NAMESPACES = {
    "AWS/NATGateway": "NOT EMULATED: no NAT gateway locally",
    "AWS/Billing": "NOT EMULATED: no AWS bill locally; the report's cost projection stands in",
}


def dashboard_name(kind: str) -> str:
    return f"{PREFIX}-{kind}"


def _annotations(alarms: Sequence[AlarmDefinition], namespace: str, metric: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for alarm in alarms:
        if alarm.cloudwatch.namespace == namespace and alarm.cloudwatch.name == metric:
            seen.setdefault(alarm.severity, {"label": alarm.severity, "value": alarm.threshold})
    return list(seen.values())


def _widget(
    title: str,
    metrics: list[list[Any]],
    region: str,
    alarms: Sequence[AlarmDefinition],
    stat: str = "Average",
    period: int = 60,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title,
        "metrics": metrics,
        "region": region,
        "stat": stat,
        "period": period,
        "view": "timeSeries",
    }
    lines = [a for m in metrics if isinstance(m[0], str) for a in _annotations(alarms, m[0], m[1])]
    if lines:
        properties["annotations"] = {"horizontal": lines}
    return {"type": "metric", "width": 12, "height": 6, "properties": properties}


def _layout(widgets: list[dict[str, Any]]) -> dict[str, Any]:
    for i, widget in enumerate(widgets):
        widget["x"], widget["y"] = (i % 2) * 12, (i // 2) * 6
    return {"widgets": widgets}


def dashboard_bodies(
    alarms: Sequence[AlarmDefinition], region: str, resources: Resources | None = None
) -> dict[str, dict[str, Any]]:
    """Dashboard name -> body (the DashboardBody PutDashboard takes, as a dict)."""
    r = resources or Resources()
    db = ["DBInstanceIdentifier", r.db_instance]
    node = ["CacheClusterId", r.cache_cluster, "CacheNodeId", r.cache_node]
    proxy = ["ProxyName", r.proxy]
    database = [
        _widget(
            "RDS CPU and freeable memory",
            [["AWS/RDS", "CPUUtilization", *db], ["AWS/RDS", "FreeableMemory", *db, {"yAxis": "right"}]],
            region,
            alarms,
        ),
        _widget(
            "Database connections",
            [
                ["AWS/RDS", "DatabaseConnections", *db],
                ["AWS/RDS", "ClientConnections", *proxy],
                ["AWS/RDS", "DatabaseConnections", *proxy],
            ],
            region,
            alarms,
            stat="Maximum",
        ),
        _widget(
            "Query performance (proxy)",
            [
                ["AWS/RDS", "QueryDatabaseResponseLatency", *proxy],
                ["AWS/RDS", "ReadIOPS", *db],
                ["AWS/RDS", "WriteIOPS", *db],
            ],
            region,
            alarms,
        ),
        _widget("Storage", [["AWS/RDS", "FreeStorageSpace", *db]], region, alarms, stat="Minimum"),
        _widget(
            "CPU credit balance (backup window load shows here)",
            [["AWS/RDS", "CPUCreditBalance", *db], ["AWS/RDS", "CPUSurplusCreditBalance", *db]],
            region,
            alarms,
            stat=CREDIT_STATISTICS["CPUCreditBalance"],
            period=CREDIT_PERIOD_S,
        ),
        _widget(
            "CPU credits spent and surplus charged",
            [["AWS/RDS", "CPUCreditUsage", *db], ["AWS/RDS", "CPUSurplusCreditsCharged", *db]],
            region,
            alarms,
            stat=CREDIT_STATISTICS["CPUCreditUsage"],
            period=CREDIT_PERIOD_S,
        ),
    ]
    cache = [
        _widget("Cache hit rate", [["AWS/ElastiCache", "CacheHitRate", *node]], region, alarms),
        _widget(
            "Hits and misses",
            [["AWS/ElastiCache", "CacheHits", *node], ["AWS/ElastiCache", "CacheMisses", *node]],
            region,
            alarms,
            stat="Sum",
        ),
        _widget("Memory", [["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", *node]], region, alarms),
        _widget("Evictions", [["AWS/ElastiCache", "Evictions", *node]], region, alarms, stat="Sum"),
        _widget(
            "CPU",
            [["AWS/ElastiCache", "CPUUtilization", *node], ["AWS/ElastiCache", "EngineCPUUtilization", *node]],
            region,
            alarms,
        ),
        _widget("Connections", [["AWS/ElastiCache", "CurrConnections", *node]], region, alarms, stat="Maximum"),
        _widget(
            "CPU credit balance",
            [["AWS/ElastiCache", "CPUCreditBalance", *node]],
            region,
            alarms,
            stat=CREDIT_STATISTICS["CPUCreditBalance"],
            period=CREDIT_PERIOD_S,
        ),
    ]
    functions = [["AWS/Lambda", "Duration", "FunctionName", f] for f in FUNCTIONS]
    lambdas = [
        _widget("Duration (max)", functions, region, alarms, stat="Maximum"),
        _widget(
            "Errors and invocations",
            [["AWS/Lambda", m, "FunctionName", f] for f in FUNCTIONS for m in ("Errors", "Invocations")],
            region,
            alarms,
            stat="Sum",
        ),
        _widget(
            "Concurrent executions and throttles",
            [
                ["AWS/Lambda", "ConcurrentExecutions"],
                *[["AWS/Lambda", "Throttles", "FunctionName", f] for f in FUNCTIONS],
            ],
            region,
            alarms,
            stat="Maximum",
        ),
        _widget(
            "Estimated charges (cost analysis)",
            [["AWS/Billing", "EstimatedCharges", "Currency", "USD"]],
            "us-east-1",
            alarms,
            stat="Maximum",
            period=21_600,
        ),
    ]
    network = [
        _widget(
            "NAT gateway utilisation",
            [
                ["AWS/NATGateway", "BytesOutToDestination", "NatGatewayId", "<nat-gateway-id>"],
                ["AWS/NATGateway", "ActiveConnectionCount", "NatGatewayId", "<nat-gateway-id>"],
            ],
            region,
            alarms,
            stat="Sum",
        ),
        _widget(
            "Data transfer (NAT, bytes in from destination)",
            [["AWS/NATGateway", "BytesInFromDestination", "NatGatewayId", "<nat-gateway-id>"]],
            region,
            alarms,
            stat="Sum",
        ),
        {
            "type": "log",
            "width": 24,
            "height": 6,
            "properties": {
                "title": "VPC flow logs: rejected connections (security groups)",
                "region": region,
                "query": "SOURCE '/aws/vpc/flowlogs' | filter action = 'REJECT' "
                "| stats count(*) by dstPort | sort count(*) desc | limit 20",
                "view": "table",
            },
        },
    ]
    return {
        dashboard_name("database"): _layout(database),
        dashboard_name("cache"): _layout(cache),
        dashboard_name("lambda"): _layout(lambdas),
        dashboard_name("network"): _layout(network),
    }


def body_text(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True)
