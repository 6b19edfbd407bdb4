"""A month of the unit: free-tier usage and cost after the free tier, from the deployment shape, the
monthly model (fixtures/monthly_model.yaml), and what this run measured (Lambda billed durations, log
volume, custom metrics on the AWS endpoint, the RDS CPU surplus of the modelled credit day). Runs after the
Lambda scenario, whose billed durations it uses:
Lambda charges GB-seconds on Billed Duration (Duration plus any Init Duration, rounded up to 1 ms), not on
Duration.
"""

from __future__ import annotations

import pytest

from harness.app.gdpr_invoke import lambda_client
from harness.measure.metrics import Statistic
from harness.model.projection import load_model, project
from harness.monitoring.alarms import alarm_definitions, alarm_metric_count
from harness.monitoring.dashboards import dashboard_bodies
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

LOG_EVENTS_CAP = 20_000
# Means come from HDR histograms kept to 3 significant digits: each may be off by 0.1 %.
HDR_REL = 1e-3


def measured_mean_ms(results, function: str, measure: str) -> float:
    metric = f"lambda.{function}.{measure}"
    data = results.read().get(metric)
    assert data is not None, f"no {metric} in the results: the Lambda scenario did not run"
    return data.statistic(Statistic("mean")).value


def log_bytes_per_invocation(stack, function: str) -> float | None:
    """Bytes of CloudWatch Logs one invocation writes, from the function's log group."""
    logs = stack.aws.client("logs")
    group = f"/aws/lambda/{function}"
    total, reports, token, seen = 0, 0, None, 0
    while seen < LOG_EVENTS_CAP:
        kwargs = {"logGroupName": group, "limit": 1000, **({"nextToken": token} if token else {})}
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return None
        for event in page.get("events", []):
            total += len(event["message"].encode())
            reports += event["message"].startswith("REPORT ")
        seen += len(page.get("events", []))
        token = page.get("nextToken")
        if not token or not page.get("events"):
            break
    return total / reports if reports else None


def test_month_of_the_unit(stack, results, harness_settings):
    model = load_model(unit=harness_settings.unit)
    billed = {f: measured_mean_ms(results, f, "billed_duration_ms") for f in model.invocations}
    surplus = results.read().get("credits.rds_surplus_usd")
    assert surplus is not None, "no credits.rds_surplus_usd in the results: the credit-day scenario did not run"
    alarms = alarm_definitions(load_thresholds(DEFAULT_THRESHOLDS_FILE))
    alarm_metrics, dashboards = alarm_metric_count(alarms), len(dashboard_bodies(alarms, stack.aws.region))
    projection = project(
        model,
        billed,
        rds_cpu_surplus_usd=surplus.statistic(Statistic("value")).value,
        alarm_metrics=alarm_metrics,
        dashboards=dashboards,
    )
    results.record_value("free_tier.rds_hours", projection.rds_hours)
    results.record_value("free_tier.elasticache_hours", projection.elasticache_hours)
    results.record_value("free_tier.lambda_requests_pct", projection.lambda_requests_pct)
    results.record_value("free_tier.lambda_gb_seconds_pct", projection.lambda_gb_seconds_pct)
    results.record_value("cost.monthly_usd", projection.monthly_usd_after_free_tier)
    results.update_run(
        {"monthly_projection": {"breakdown_usd": projection.breakdown_usd, "mean_billed_duration_ms": billed}}
    )

    per_invocation = {f: log_bytes_per_invocation(stack, f) for f in model.invocations}
    measured = {f: b for f, b in per_invocation.items() if b is not None}
    assert measured, "no Lambda log group holds a REPORT line: CloudWatch Logs were not written"
    # A function with no log group of its own is charged the largest measured figure: a guess on the safe side.
    fallback = max(measured.values())
    log_bytes = sum(count * (per_invocation[f] or fallback) for f, count in model.invocations.items())
    results.record_value("free_tier.cloudwatch_logs_bytes", log_bytes)

    metrics = stack.aws.client("cloudwatch").get_paginator("list_metrics")
    custom = {
        (m["Namespace"], m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", []))))
        for page in metrics.paginate()
        for m in page["Metrics"]
        if not m["Namespace"].startswith("AWS/")
    }
    results.record_value("cloudwatch.custom_metrics", float(len(custom)))
    results.record_value("cloudwatch.alarm_metrics", float(alarm_metrics))
    results.record_value("cloudwatch.dashboards", float(dashboards))
    print(
        f"month: RDS {projection.rds_hours:.0f} h, ElastiCache {projection.elasticache_hours:.0f} h, Lambda "
        f"{projection.lambda_requests:,} requests ({projection.lambda_requests_pct:.1f} % of free), "
        f"{projection.lambda_gb_seconds:,.0f} GB-s ({projection.lambda_gb_seconds_pct:.1f} %), logs "
        f"{log_bytes / 2**20:.1f} MiB, {len(custom)} custom metrics, {alarm_metrics} alarm metrics and "
        f"{dashboards} dashboards (${projection.breakdown_usd['cloudwatch_alarms']:.2f} + "
        f"${projection.breakdown_usd['cloudwatch_dashboards']:.2f} beyond the free tier), "
        f"${projection.monthly_usd_after_free_tier:.2f} "
        f"after the free tier"
    )

    # Billing rounds each invocation up and adds its INIT phase: never below what ran.
    for function in model.invocations:
        ran = measured_mean_ms(results, function, "duration_ms")
        assert billed[function] >= ran * (1 - 2 * HDR_REL), f"{function}: billed {billed[function]} ms, ran {ran} ms"
    # GB-seconds at the memory the functions are deployed with, not only the sizes the projection assumes.
    client = lambda_client(stack.aws)
    deployed_mb = {f: client.get_function_configuration(FunctionName=f)["MemorySize"] for f in model.invocations}
    gb_seconds = sum(count * billed[f] / 1000 * deployed_mb[f] / 1024 for f, count in model.invocations.items())
    assert projection.lambda_gb_seconds == pytest.approx(gb_seconds, rel=1e-9), deployed_mb
    within_free_tier = projection.lambda_gb_seconds <= model.free_tier["lambda_gb_seconds"]
    assert within_free_tier == (projection.lambda_gb_seconds_pct <= 100.0), projection
