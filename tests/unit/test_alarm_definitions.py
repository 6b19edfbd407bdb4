"""Alarms from thresholds.yaml: which thresholds become alarms, with what operator, level and evaluation;
the `alarm:` block's validation."""

import pytest

from harness.monitoring.alarms import alarm_definitions
from harness.monitoring.catalog import cloudwatch_metric
from harness.thresholds import ThresholdConfigError, load_thresholds, parse_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

SEED_ALARMED = {
    "rds.cpu_pct",
    "rds.connections_pct",
    "cache.cpu_pct",
    "cache.hit_rate_pct",
    *(
        f"lambda.{f}.{m}"
        for f in ("data_export", "data_deletion", "audit_logging")
        for m in ("duration_ms", "error_rate_pct")
    ),
    "cost.monthly_usd",
}


def by_name():
    return {a.name: a for a in alarm_definitions(load_thresholds(DEFAULT_THRESHOLDS_FILE))}


def test_every_seed_threshold_with_a_cloudwatch_metric_has_a_warning_and_a_critical_alarm():
    alarms = by_name()
    for metric in SEED_ALARMED:
        assert f"dbunit-{metric}-warning" in alarms, metric
        assert f"dbunit-{metric}-critical" in alarms, metric


def test_thresholds_without_a_cloudwatch_metric_have_no_alarm():
    alarmed = {a.metric for a in by_name().values()}
    assert "vector_search.latency_ms" not in alarmed
    assert "free_tier.rds_hours" not in alarmed
    assert cloudwatch_metric("proxy.acquire_ms") is None


@pytest.mark.parametrize(
    ("name", "namespace", "metric", "statistic", "operator", "level"),
    [
        ("dbunit-rds.cpu_pct-warning", "AWS/RDS", "CPUUtilization", "Average", "GreaterThanOrEqualToThreshold", 70),
        ("dbunit-cache.hit_rate_pct-critical", "AWS/ElastiCache", "CacheHitRate", "Average", "LessThanThreshold", 50),
        (
            "dbunit-lambda.data_export.duration_ms-critical",
            "AWS/Lambda",
            "Duration",
            "Maximum",
            "GreaterThanOrEqualToThreshold",
            250000,
        ),
        ("dbunit-cache.evictions-warning", "AWS/ElastiCache", "Evictions", "Sum", "GreaterThanThreshold", 0),
    ],
)
def test_a_threshold_that_must_hold_becomes_an_alarm_on_its_breach(name, namespace, metric, statistic, operator, level):
    alarm = by_name()[name]
    kwargs = alarm.put_kwargs("arn:aws:sns:us-east-2:000000000000:t")
    assert (kwargs["Namespace"], kwargs["MetricName"], kwargs["Statistic"]) == (namespace, metric, statistic)
    assert kwargs["ComparisonOperator"] == operator
    assert kwargs["Threshold"] == level
    assert kwargs["AlarmActions"] == kwargs["OKActions"] == ["arn:aws:sns:us-east-2:000000000000:t"]


def test_connections_alarm_on_the_count_that_is_the_percentage_of_max_connections():
    alarms = by_name()
    # db.t3.micro: max_connections 112, so 70 % and 90 % are 78.4 and 100.8 connections.
    assert alarms["dbunit-rds.connections_pct-warning"].threshold == pytest.approx(78.4)
    assert alarms["dbunit-rds.connections_pct-critical"].threshold == pytest.approx(100.8)
    assert alarms["dbunit-rds.connections_pct-critical"].rule.threshold == 90


def test_lambda_error_rate_is_metric_math_over_errors_and_invocations():
    kwargs = by_name()["dbunit-lambda.audit_logging.error_rate_pct-warning"].put_kwargs("arn")
    assert "MetricName" not in kwargs
    ids = {m["Id"]: m for m in kwargs["Metrics"]}
    assert ids["e1"]["Expression"] == "100 * m1 / m2"
    assert ids["m1"]["MetricStat"]["Metric"]["MetricName"] == "Errors"
    assert ids["m2"]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": "audit_logging"}]


def test_the_alarm_block_overrides_the_catalog_defaults_and_missing_keys_keep_them():
    alarms = by_name()
    cpu = alarms["dbunit-rds.cpu_pct-warning"].rule
    assert (cpu.period_s, cpu.evaluation_periods, cpu.datapoints_to_alarm) == (60, 5, 3)
    text = """
schema_version: 1
thresholds:
  - metric: rds.cpu_pct
    warning: mean < 70%
    unit: "%"
    source: test
    alarm: {period_s: 300, datapoints_to_alarm: 1, treat_missing_data: breaching}
"""
    (alarm,) = alarm_definitions(parse_thresholds(text, "t.yaml"))
    assert (alarm.rule.period_s, alarm.rule.evaluation_periods, alarm.rule.datapoints_to_alarm) == (300, 5, 1)
    assert alarm.rule.treat_missing_data == "breaching"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{period_s: 45}", "period_s 45"),
        ("{evaluation_periods: 2, datapoints_to_alarm: 3}", "datapoints_to_alarm 3 exceeds evaluation_periods 2"),
        ("{treat_missing_data: sometimes}", "treat_missing_data 'sometimes'"),
        ("{periods: 3}", "unknown alarm key 'periods'"),
        ("{evaluation_periods: 0}", "evaluation_periods must be a whole number"),
        ("{evaluation_periods: 2.5}", "evaluation_periods must be a whole number"),
        ("five", "alarm must be a mapping"),
    ],
)
def test_a_bad_alarm_block_is_refused_with_its_line(block, message):
    text = f"""schema_version: 1
thresholds:
  - metric: rds.cpu_pct
    warning: mean < 70%
    unit: "%"
    source: test
    alarm: {block}
"""
    with pytest.raises(ThresholdConfigError, match=message) as caught:
        parse_thresholds(text, "t.yaml")
    assert "t.yaml:7" in str(caught.value)


def test_a_drill_copy_watches_its_own_function_at_a_lower_level_and_a_scaled_alarm_refuses_one():
    alarms = by_name()
    production = alarms["dbunit-lambda.audit_logging.duration_ms-warning"]
    drill = production.with_period(10).drilled_on("FunctionName", "dbunit-drill-duration", 2000.0)
    assert dict(drill.dimensions) == {"FunctionName": "dbunit-drill-duration"}
    assert (drill.threshold, drill.rule.threshold, drill.rule.period_s) == (2000.0, 2000.0, 10)
    assert drill.put_kwargs("arn:aws:sns:us-east-2:0:t")["Threshold"] == 2000.0
    assert production.threshold == 180000.0
    with pytest.raises(ValueError, match="no dimension"):
        production.drilled_on("DBInstanceIdentifier", "x")
    with pytest.raises(ValueError, match="max_connections"):
        alarms["dbunit-rds.connections_pct-critical"].drilled_on("DBInstanceIdentifier", "x", 5.0)
