"""A month of the unit: free-tier usage and cost after the free tier, from the deployment shape, the
monthly model (fixtures/monthly_model.yaml), and what this run measured (Lambda durations, log volume,
custom metrics on the AWS endpoint). Runs after the Lambda scenario, whose durations it uses.
"""

from __future__ import annotations

from harness.measure.metrics import Statistic
from harness.measure.projection import load_model, project

LOG_EVENTS_CAP = 20_000


def measured_mean_duration_ms(results, function: str) -> float:
    data = results.read().get(f"lambda.{function}.duration_ms")
    assert data is not None, f"no lambda.{function}.duration_ms in the results: the Lambda scenario did not run"
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


def test_month_of_the_unit(stack, results):
    model = load_model()
    means = {function: measured_mean_duration_ms(results, function) for function in model.invocations}
    projection = project(model, means)
    results.record_value("free_tier.rds_hours", projection.rds_hours)
    results.record_value("free_tier.elasticache_hours", projection.elasticache_hours)
    results.record_value("free_tier.lambda_requests_pct", projection.lambda_requests_pct)
    results.record_value("free_tier.lambda_gb_seconds_pct", projection.lambda_gb_seconds_pct)
    results.record_value("cost.monthly_usd", projection.monthly_usd_after_free_tier)
    results.update_run({"monthly_projection": {"breakdown_usd": projection.breakdown_usd, "mean_duration_ms": means}})

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
    print(
        f"month: RDS {projection.rds_hours:.0f} h, ElastiCache {projection.elasticache_hours:.0f} h, Lambda "
        f"{projection.lambda_requests:,} requests ({projection.lambda_requests_pct:.1f} % of free), "
        f"{projection.lambda_gb_seconds:,.0f} GB-s ({projection.lambda_gb_seconds_pct:.1f} %), logs "
        f"{log_bytes / 2**20:.1f} MiB, {len(custom)} custom metrics, ${projection.monthly_usd_after_free_tier:.2f} "
        f"after the free tier"
    )
    assert projection.lambda_gb_seconds > 0
