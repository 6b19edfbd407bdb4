"""The checklist's CloudWatch items decided from what a run recorded: alarms deployed with SNS actions and every
alarm family drilled; metrics with datapoints; dashboards on the stack with data. Nothing recorded, a drill not run
or not breached, a widget without data: NOT CHECKED YET, never PASS."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checklist import CheckStatus, evaluate_checklist

FAMILIES = ["rds_cpu", "rds_connections", "cache_hit_rate", "lambda_error_rate", "lambda_duration"]


def decided(run: dict[str, Any], item: str) -> tuple[CheckStatus, str]:
    (found,) = [r for r in evaluate_checklist(run, []) if r.item.id == f"post.monitoring_tests.{item}"]
    return found.result.status, found.result.evidence


def deployed(missing: list[str] | None = None, without: list[str] | None = None) -> dict[str, Any]:
    return {
        "expected": 26,
        "listed_with_sns_actions": 26 - len(missing or []) - len(without or []),
        "missing": missing or [],
        "without_sns_actions": without or [],
        "drills_expected": FAMILIES,
        "drills_fact": "alarm_drills",
    }


def drill(status: str, evidence: str = "OK -> ALARM after 3.1 s") -> dict[str, Any]:
    return {"status": status, "evidence": evidence, "judged_by": "emulator and harness evaluator"}


def test_every_alarm_listed_and_every_drill_passed_passes():
    run = {"cloudwatch": {"alarms": deployed()}, "alarm_drills": {f: drill("PASS") for f in FAMILIES}}
    status, evidence = decided(run, "alarms")
    assert status is CheckStatus.PASS
    assert "26 of 26 alarms with SNS actions" in evidence and "lambda_duration: PASS" in evidence


@pytest.mark.parametrize(
    ("run", "expected", "named"),
    [
        ({}, CheckStatus.NOT_CHECKED_YET, "not recorded"),
        ({"cloudwatch": {"alarms": deployed()}}, CheckStatus.NOT_CHECKED_YET, "rds_cpu: drill not run"),
        (
            {
                "cloudwatch": {"alarms": deployed()},
                "alarm_drills": {**{f: drill("PASS") for f in FAMILIES}, "rds_cpu": drill("NOT BREACHED", "peak 40 %")},
            },
            CheckStatus.NOT_CHECKED_YET,
            "rds_cpu: NOT BREACHED: peak 40 %",
        ),
        (
            {
                "cloudwatch": {"alarms": deployed()},
                "alarm_drills": {**{f: drill("PASS") for f in FAMILIES}, "cache_hit_rate": drill("FAIL", "timeout")},
            },
            CheckStatus.FAIL,
            "cache_hit_rate: FAIL: timeout",
        ),
        (
            {
                "cloudwatch": {"alarms": deployed(missing=["dbunit-rds.cpu_pct-warning"])},
                "alarm_drills": {f: drill("PASS") for f in FAMILIES},
            },
            CheckStatus.FAIL,
            "dbunit-rds.cpu_pct-warning",
        ),
        (
            {
                "cloudwatch": {"alarms": deployed(without=["dbunit-cache.cpu_pct-critical"])},
                "alarm_drills": {f: drill("PASS") for f in FAMILIES},
            },
            CheckStatus.FAIL,
            "dbunit-cache.cpu_pct-critical",
        ),
        (
            {
                "cloudwatch": {"alarms": deployed()},
                "alarm_drills": {f: drill("PASS") for f in FAMILIES},
                "scenario_checks": {"failed": ["scenarios/test_alarm_drills.py::test_rds_cpu_drill"]},
            },
            CheckStatus.FAIL,
            "test_rds_cpu_drill",
        ),
    ],
    ids=[
        "nothing recorded",
        "no drill ran",
        "a drill not breached",
        "a drill failed",
        "an alarm missing",
        "an alarm without actions",
        "a drill test failed",
    ],
)
def test_alarms_are_not_passed_unless_all_are_deployed_and_every_drill_passed(run, expected, named):
    status, evidence = decided(run, "alarms")
    assert status is expected
    assert named in evidence


def metrics(counts: dict[str, int]) -> dict[str, Any]:
    return {"cloudwatch": {"metrics": {"since": 0, "until": 60, "datapoints": counts}}}


@pytest.mark.parametrize(
    ("counts", "expected", "named"),
    [
        (
            {"AWS/RDS CPUUtilization DBInstanceIdentifier=x": 60, "AWS/Lambda Duration FunctionName=f": 3},
            CheckStatus.PASS,
            "2 of 2",
        ),
        (
            {"AWS/RDS CPUUtilization DBInstanceIdentifier=x": 60, "AWS/RDS ReadIOPS DBInstanceIdentifier=x": 0},
            CheckStatus.FAIL,
            "AWS/RDS ReadIOPS",
        ),
        (
            {"AWS/RDS CPUUtilization DBInstanceIdentifier=x": 60, "AWS/Lambda Duration FunctionName=f": 0},
            CheckStatus.NOT_CHECKED_YET,
            "nothing at all in AWS/Lambda",
        ),
        ({}, CheckStatus.NOT_CHECKED_YET, "no published metric"),
    ],
    ids=["all flowing", "one silent metric", "a silent namespace", "nothing listed"],
)
def test_metrics_flowing_needs_datapoints_of_every_published_metric(counts, expected, named):
    status, evidence = decided(metrics(counts), "metrics_flowing")
    assert status is expected
    assert named in evidence


def test_metrics_flowing_not_recorded_is_not_checked():
    assert decided({}, "metrics_flowing")[0] is CheckStatus.NOT_CHECKED_YET


def dashboards(on_stack: bool = True, cpu_points: list[list[float]] | None = None) -> dict[str, Any]:
    widgets = [
        {"title": "RDS CPU", "lines": [{"metric": "CPUUtilization", "points": cpu_points or []}]},
        {"title": "NAT", "lines": [{"metric": "BytesOutToDestination", "not_emulated": "no NAT gateway locally"}]},
        {"title": "flow logs", "type": "log", "not_emulated": "no VPC"},
    ]
    return {
        "cloudwatch": {"dashboards": {"dashboards": {"dbunit-database": {"on_stack": on_stack, "widgets": widgets}}}}
    }


def test_dashboards_display_data_when_every_local_widget_has_datapoints():
    status, evidence = decided(dashboards(cpu_points=[[0.0, 40.0]]), "dashboards")
    assert status is CheckStatus.PASS
    assert "1 widgets show the run's datapoints; 2 NOT EMULATED" in evidence


def test_a_widget_without_data_is_not_checked_and_a_missing_dashboard_fails():
    status, evidence = decided(dashboards(), "dashboards")
    assert status is CheckStatus.NOT_CHECKED_YET and "dbunit-database: RDS CPU" in evidence
    status, evidence = decided(dashboards(on_stack=False, cpu_points=[[0.0, 1.0]]), "dashboards")
    assert status is CheckStatus.FAIL and "not on the stack: dbunit-database" in evidence
    assert decided({}, "dashboards")[0] is CheckStatus.NOT_CHECKED_YET


def logged(lines: dict[str, int], invoked: dict[str, int]) -> dict[str, Any]:
    return {
        "logs": {
            "groups": {
                name: {"group": f"/aws/lambda/{name}", "exists": n > 0, "retention_days": None, "report_lines": n}
                for name, n in lines.items()
            }
        },
        "metrics": {
            "datapoints": {f"AWS/Lambda Invocations FunctionName={name}": n for name, n in invoked.items()},
        },
    }


@pytest.mark.parametrize(
    ("lines", "invoked", "expected", "named"),
    [
        ({"data_export": 3, "audit_logging": 5}, {"data_export": 3, "audit_logging": 5}, CheckStatus.PASS, "5 REPORT"),
        (
            {"data_export": 0, "audit_logging": 5},
            {"data_export": 3, "audit_logging": 5},
            CheckStatus.FAIL,
            "data_export",
        ),
        (
            {"data_export": 0, "audit_logging": 0},
            {"data_export": 0, "audit_logging": 0},
            CheckStatus.NOT_CHECKED_YET,
            "no function",
        ),
        (
            {"data_export": 0, "audit_logging": 4},
            {"data_export": 0, "audit_logging": 4},
            CheckStatus.PASS,
            "(not invoked)",
        ),
    ],
)
def test_log_aggregation_needs_the_log_lines_of_every_function_the_run_invoked(lines, invoked, expected, named):
    status, evidence = decided({"cloudwatch": logged(lines, invoked)}, "log_aggregation")
    assert status is expected, evidence
    assert named in evidence


def test_log_aggregation_not_recorded_is_not_checked():
    status, _ = decided({"cloudwatch": {}}, "log_aggregation")
    assert status is CheckStatus.NOT_CHECKED_YET
