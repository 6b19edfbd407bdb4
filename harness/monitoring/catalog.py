"""Which CloudWatch metric watches each harness metric in production, and how its alarm evaluates by default.

The harness measures `rds.cpu_pct`; production watches AWS/RDS CPUUtilization per DBInstanceIdentifier.
This table is that translation: namespace, metric name, dimensions, CloudWatch statistic, how the local
series maps onto datapoints, and the evaluation defaults a threshold's `alarm:` block may override.

Defaults, and why:
- Period: what AWS emits at. RDS and ElastiCache host metrics and Lambda metrics come every 60 s; a
  shorter period on them only adds missing datapoints. AWS/Billing EstimatedCharges arrives about every
  6 hours, so its alarms use 21,600 s.
- CPU (Average): 3 of 5 one-minute datapoints. A single busy minute (a vacuum, a deploy) does not page;
  three busy minutes out of five do, even with a dip between them.
- Connections (Maximum): 1 of 1. Exhaustion refuses clients the moment it happens.
- Hit rate (Average): 3 of 5, as CPU: a cache restart is cold for a minute or two by design.
- Lambda duration (Maximum) and throttles/evictions (Sum): 1 of 1; one invocation near the timeout
  is the event the alarm exists for.
- Lambda error rate (metric math 100 * Errors / Invocations, both Sum): 3 of 5; one failed invocation
  among few is 100 % for that minute.
- Missing data: `missing` (CloudWatch's default) for host metrics, which always report; `notBreaching`
  for Lambda, whose metrics are absent in minutes without invocations, and for billing.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.thresholds import Threshold


@dataclass(frozen=True)
class Resources:
    """The names the production alarms' dimensions carry. Defaults are the document's unit; an external
    deployment passes its own."""

    db_instance: str = "dbunit-postgres"
    proxy: str = "dbunit-proxy"
    cache_cluster: str = "dbunit-redis"
    cache_node: str = "0001"


@dataclass(frozen=True)
class CloudWatchMetric:
    namespace: str
    name: str
    # Dimension names; values come from Resources (or the function name for Lambda).
    dimensions: tuple[str, ...]
    statistic: str
    unit: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str
    # "gauge": the local samples are the metric's raw values; "ratio": the local rate intervals are
    # (hits, total) summed per period, as metric math over two Sum metrics; "histogram": no timestamps kept,
    # so only a Maximum alarm can be judged (from the run's max); "count": Sum of a counter.
    local_series: str = "gauge"
    # Metric math for ratio alarms: (numerator metric, denominator metric).
    ratio_of: tuple[str, str] | None = None
    # The local metric is a % of a limit while CloudWatch reports the count (connections).
    scale_by: str | None = None
    region: str | None = None


_RDS = ("DBInstanceIdentifier",)
_CACHE = ("CacheClusterId", "CacheNodeId")
_LAMBDA = ("FunctionName",)

_FIXED: dict[str, CloudWatchMetric] = {
    "rds.cpu_pct": CloudWatchMetric("AWS/RDS", "CPUUtilization", _RDS, "Average", "Percent", 60, 5, 3, "missing"),
    "rds.connections_pct": CloudWatchMetric(
        "AWS/RDS", "DatabaseConnections", _RDS, "Maximum", "Count", 60, 1, 1, "missing", scale_by="max_connections"
    ),
    "cache.cpu_pct": CloudWatchMetric(
        "AWS/ElastiCache", "CPUUtilization", _CACHE, "Average", "Percent", 60, 5, 3, "missing"
    ),
    "cache.hit_rate_pct": CloudWatchMetric(
        "AWS/ElastiCache", "CacheHitRate", _CACHE, "Average", "Percent", 60, 5, 3, "missing", local_series="ratio"
    ),
    "cache.evictions": CloudWatchMetric(
        "AWS/ElastiCache", "Evictions", _CACHE, "Sum", "Count", 60, 1, 1, "notBreaching", local_series="count"
    ),
    "cost.monthly_usd": CloudWatchMetric(
        "AWS/Billing",
        "EstimatedCharges",
        ("Currency",),
        "Maximum",
        "None",
        21_600,
        1,
        1,
        "notBreaching",
        local_series="projection",
        region="us-east-1",
    ),
}


def _lambda_metric(measure: str) -> CloudWatchMetric | None:
    match measure:
        case "duration_ms":
            return CloudWatchMetric(
                "AWS/Lambda", "Duration", _LAMBDA, "Maximum", "Milliseconds", 60, 1, 1, "notBreaching", "histogram"
            )
        case "error_rate_pct":
            return CloudWatchMetric(
                "AWS/Lambda",
                "ErrorRate",
                _LAMBDA,
                "Sum",
                "Percent",
                60,
                5,
                3,
                "notBreaching",
                local_series="ratio",
                ratio_of=("Errors", "Invocations"),
            )
        case "throttles":
            return CloudWatchMetric(
                "AWS/Lambda", "Throttles", _LAMBDA, "Sum", "Count", 60, 1, 1, "notBreaching", local_series="count"
            )
    return None


# The CPU-credit metrics AWS emits every 5 minutes for burstable classes (db.t3, cache.t3), with the statistic a
# 5-minute datapoint carries. The sampler's ledgers (harness/model/credits.py) book them under these names;
# they are published and drawn, not alarmed on (the document sets no level on them). ElastiCache's T3 nodes run
# in standard mode: no surplus credits.
CREDIT_PERIOD_S = 300
CREDIT_STATISTICS = {
    "CPUCreditUsage": "Sum",
    "CPUCreditBalance": "Average",
    "CPUSurplusCreditBalance": "Average",
    "CPUSurplusCreditsCharged": "Sum",
}
CREDIT_METRICS: dict[str, tuple[str, ...]] = {
    "rds": ("CPUCreditUsage", "CPUCreditBalance", "CPUSurplusCreditBalance", "CPUSurplusCreditsCharged"),
    "cache": ("CPUCreditUsage", "CPUCreditBalance"),
}

# Thresholds no CloudWatch metric watches, and what does instead (shown by `harness alarms list`).
NOT_CLOUDWATCH = {
    "free_tier.": "AWS Budgets free-tier usage alerts, not a CloudWatch metric",
    "cloudwatch.": "a count of the deployment's own CloudWatch resources, checked by the cost projection",
    "vector_search.": "no AWS metric: application latency and recall, judged by the harness's scenarios",
    "proxy.acquire_ms": "RDS Proxy publishes no borrow-wait metric; judged by the harness's scenarios",
}


def cloudwatch_metric(metric: str) -> CloudWatchMetric | None:
    """The CloudWatch metric production would alarm on for a harness metric, None when there is none."""
    if metric in _FIXED:
        return _FIXED[metric]
    parts = metric.split(".")
    if len(parts) == 3 and parts[0] == "lambda":
        return _lambda_metric(parts[2])
    return None


def why_not_cloudwatch(metric: str) -> str:
    for prefix, reason in NOT_CLOUDWATCH.items():
        if metric.startswith(prefix):
            return reason
    return "no CloudWatch metric corresponds"


def dimension_values(threshold: Threshold, cw: CloudWatchMetric, resources: Resources) -> list[dict[str, str]]:
    values = {
        "DBInstanceIdentifier": resources.db_instance,
        "CacheClusterId": resources.cache_cluster,
        "CacheNodeId": resources.cache_node,
        "ProxyName": resources.proxy,
        "Currency": "USD",
    }
    if "FunctionName" in cw.dimensions:
        values["FunctionName"] = threshold.metric.split(".")[1]
    return [{"Name": name, "Value": values[name]} for name in cw.dimensions]
