"""What a run keeps about CloudWatch on the stack: the alarms as describe_alarms lists them, which metrics
the unit published have datapoints in the run, and every dashboard widget's datapoints as the dashboard
shows them (its metrics, dimensions, statistic and period).

Read from the emulator during a scenario session and stored as the run fact `cloudwatch`, so the checklist
("CloudWatch metrics flowing", "Dashboards displaying data", "Alarms configured and tested") and the
report's dashboards come from results.json alone, and a report re-rendered later shows the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from harness.monitoring.alarms import AlarmDefinition
from harness.monitoring.catalog import CREDIT_METRICS, Resources
from harness.monitoring.dashboards import NOT_EMULATED_NAMESPACES
from harness.monitoring.deploy import describe
from harness.monitoring.drill import DRILL_FACT, FAMILIES

FACT = "cloudwatch"
# GetMetricStatistics returns at most 1,440 datapoints per call.
MAX_DATAPOINTS = 1_440


def alarms_evidence(cloudwatch: Any, alarms: Sequence[AlarmDefinition]) -> dict[str, Any]:
    """Every alarm the thresholds call for, as the stack lists it, with its SNS actions."""
    listed = {a["AlarmName"]: a for a in describe(cloudwatch)}
    missing = sorted(a.name for a in alarms if a.name not in listed)
    without_actions = sorted(
        a.name
        for a in alarms
        if a.name in listed
        and not (
            any(":sns:" in arn for arn in listed[a.name].get("AlarmActions", []))
            and any(":sns:" in arn for arn in listed[a.name].get("OKActions", []))
        )
    )
    return {
        "expected": len(alarms),
        "listed_with_sns_actions": len(alarms) - len(missing) - len(without_actions),
        "missing": missing,
        "without_sns_actions": without_actions,
        # The drills that test them; each writes run.<DRILL_FACT>.<family> when it runs.
        "drills_expected": list(FAMILIES),
        "drills_fact": DRILL_FACT,
    }


def published_metrics(resources: Resources | None = None) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, dimensions) the unit emits locally: the publisher's AWS/RDS, RDS Proxy and
    AWS/ElastiCache metrics and the Lambda runtime's per-function metrics are checked as "flowing"."""
    r = resources or Resources()
    db = (("DBInstanceIdentifier", r.db_instance),)
    proxy = (("ProxyName", r.proxy),)
    node = (("CacheClusterId", r.cache_cluster), ("CacheNodeId", r.cache_node))
    rds = ("CPUUtilization", "DatabaseConnections", "FreeableMemory", "ReadIOPS", "WriteIOPS", "FreeStorageSpace")
    cache = (
        "CPUUtilization",
        "EngineCPUUtilization",
        "CacheHits",
        "CacheMisses",
        "CacheHitRate",
        "CurrConnections",
        "Evictions",
        "DatabaseMemoryUsagePercentage",
    )
    return [
        *[("AWS/RDS", m, db) for m in rds],
        *[("AWS/RDS", m, proxy) for m in ("ClientConnections", "DatabaseConnections", "QueryDatabaseResponseLatency")],
        *[("AWS/ElastiCache", m, node) for m in cache],
        *[("AWS/RDS", m, db) for m in CREDIT_METRICS["rds"]],
        *[("AWS/ElastiCache", m, node) for m in CREDIT_METRICS["cache"]],
    ]


def _datapoints(
    cloudwatch: Any,
    namespace: str,
    metric: str,
    dimensions: Sequence[tuple[str, str]],
    statistic: str,
    period_s: int,
    start: float,
    end: float,
) -> list[list[float]]:
    # Stretch the period so one call covers the run (CloudWatch caps the datapoints per call).
    period = max(period_s, math.ceil((end - start) / MAX_DATAPOINTS / 60) * 60)
    answer = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions],
        StartTime=datetime.fromtimestamp(start, UTC),
        EndTime=datetime.fromtimestamp(end, UTC),
        Period=period,
        Statistics=[statistic],
    )
    points = [[d["Timestamp"].timestamp(), float(d[statistic])] for d in answer.get("Datapoints", [])]
    return sorted(points)


def metrics_evidence(
    cloudwatch: Any, start: float, end: float, lambda_functions: Sequence[str], resources: Resources | None = None
) -> dict[str, Any]:
    """Datapoints each published metric has between `start` and `end` (SampleCount summed)."""
    wanted = published_metrics(resources)
    wanted += [("AWS/Lambda", m, (("FunctionName", f),)) for f in lambda_functions for m in ("Invocations", "Duration")]
    counts: dict[str, int] = {}
    for namespace, metric, dims in wanted:
        points = _datapoints(cloudwatch, namespace, metric, dims, "SampleCount", 60, start, end)
        key = f"{namespace} {metric} " + ",".join(f"{k}={v}" for k, v in dims)
        counts[key] = int(sum(v for _, v in points))
    return {"since": start, "until": end, "datapoints": counts}


# filter_log_events pages are bounded: a run's REPORT lines fit in far fewer.
MAX_LOG_PAGES = 50


def logs_evidence(logs: Any, start: float, end: float, functions: Sequence[str]) -> dict[str, Any]:
    """Each function's log group in CloudWatch Logs: whether it exists, its retention, and how many REPORT
    lines (one per invocation, written by the runtime's log shipper) arrived between `start` and `end`."""
    groups: dict[str, Any] = {}
    for name in functions:
        group = f"/aws/lambda/{name}"
        listed = [g for g in logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])]
        mine = next((g for g in listed if g.get("logGroupName") == group), None)
        lines = 0
        if mine is not None:
            token: str | None = None
            for _ in range(MAX_LOG_PAGES):
                page = logs.filter_log_events(
                    logGroupName=group,
                    startTime=int(start * 1000),
                    endTime=int(end * 1000),
                    filterPattern="REPORT",
                    **({"nextToken": token} if token else {}),
                )
                lines += len(page.get("events", []))
                token = page.get("nextToken")
                if not token:
                    break
        groups[name] = {
            "group": group,
            "exists": mine is not None,
            "retention_days": mine.get("retentionInDays") if mine else None,
            "report_lines": lines,
        }
    return {"since": start, "until": end, "groups": groups}


def _lines(metrics: Sequence[Sequence[Any]]) -> list[tuple[str, str, tuple[tuple[str, str], ...], str]]:
    """(namespace, metric, dimensions, y axis) of each line of a widget's `metrics`."""
    found = []
    for entry in metrics:
        names = [x for x in entry if not isinstance(x, dict)]
        options = next((x for x in entry if isinstance(x, dict)), {})
        namespace, metric, rest = str(names[0]), str(names[1]), [str(x) for x in names[2:]]
        dims = tuple(zip(rest[::2], rest[1::2], strict=True))
        found.append((namespace, metric, dims, str(options.get("yAxis", "left"))))
    return found


def dashboards_evidence(
    cloudwatch: Any, bodies: Mapping[str, Mapping[str, Any]], start: float, end: float
) -> dict[str, Any]:
    """Each dashboard: on the stack or not, and each widget's lines with the datapoints the widget's statistic
    and period give over the run. Widgets on resources the local unit lacks carry why instead of data."""
    listed = {d["DashboardName"] for d in cloudwatch.list_dashboards().get("DashboardEntries", [])}
    found: dict[str, Any] = {}
    for name, body in bodies.items():
        widgets = []
        for widget in body.get("widgets", []):
            props = widget.get("properties", {})
            entry: dict[str, Any] = {"title": props.get("title", ""), "type": widget.get("type", "metric")}
            if widget.get("type") != "metric":
                entry["not_emulated"] = "a Logs Insights query over VPC flow logs: no VPC locally"
                widgets.append(entry)
                continue
            stat, period = str(props.get("stat", "Average")), int(props.get("period", 60))
            levels = props.get("annotations", {}).get("horizontal", [])
            entry |= {"stat": stat, "period_s": period, "levels": levels, "lines": []}
            for namespace, metric, dims, y_axis in _lines(props.get("metrics", [])):
                line: dict[str, Any] = {
                    "namespace": namespace,
                    "metric": metric,
                    "dimensions": ",".join(f"{k}={v}" for k, v in dims),
                    "y_axis": y_axis,
                }
                if namespace in NOT_EMULATED_NAMESPACES:
                    line["not_emulated"] = NOT_EMULATED_NAMESPACES[namespace]
                else:
                    line["points"] = _datapoints(cloudwatch, namespace, metric, dims, stat, period, start, end)
                entry["lines"].append(line)
            widgets.append(entry)
        found[name] = {"on_stack": name in listed, "widgets": widgets}
    return {"since": start, "until": end, "dashboards": found}


def widget_has_data(widget: Mapping[str, Any]) -> bool:
    return any(line.get("points") for line in widget.get("lines", []))
