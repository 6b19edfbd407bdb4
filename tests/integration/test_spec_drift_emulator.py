"""The drift check against the emulators, for the calls they answer: the local Lambda runtime's
GetFunctionConfiguration and the AWS emulator's DescribeAlarms. (RDS and ElastiCache describe calls have
no local emulation: tests/unit/test_spec_drift.py covers them with recorded responses.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.app.gdpr_deploy import deploy
from harness.app.gdpr_invoke import lambda_client
from harness.endpoints import StackEndpoints
from harness.spec import load_unit_spec
from harness.spec.drift import DeploymentIds, DriftStatus, compare_spec_to_deployment, read_deployment

pytestmark = pytest.mark.integration
PREFIX = "drift-"
FUNCTIONS = ("data_export", "data_deletion", "audit_logging")
ALARMS = [("drift-rds-cpu-warning", 70.0), ("drift-rds-cpu-critical", 95.0)]


@pytest.fixture(scope="module")
def deployed(stack: StackEndpoints) -> Iterator[StackEndpoints]:
    client = lambda_client(stack.aws)
    deploy(
        client,
        db_secret_id=stack.resources.db_secret_id,
        redis_secret_id="drift/redis",
        exports_bucket=stack.resources.exports_bucket,
        name_prefix=PREFIX,
    )
    cloudwatch = stack.aws.client("cloudwatch")
    for name, level in ALARMS:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/RDS",
            MetricName="CPUUtilization",
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=level,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    try:
        yield stack
    finally:
        cloudwatch.delete_alarms(AlarmNames=[name for name, _ in ALARMS])
        for name in FUNCTIONS:
            client.delete_function(FunctionName=PREFIX + name)


def test_lambda_settings_and_alarm_levels_are_read_from_the_emulators(deployed: StackEndpoints):
    ids = DeploymentIds(functions={f: PREFIX + f for f in FUNCTIONS})
    deployment = read_deployment(deployed.aws.client, ids)
    rows = compare_spec_to_deployment(load_unit_spec(), deployment, {"rds.cpu_pct": [70.0, 90.0]}, ids)
    lambda_rows = [r for r in rows if r.resource.startswith("lambda ")]
    assert len(lambda_rows) == 6
    # The harness deploys the spec's memory sizes and timeouts: every Lambda setting matches.
    assert {r.status for r in lambda_rows} == {DriftStatus.MATCH}, [r.line() for r in lambda_rows]
    alarms = {r.expected: r for r in rows if r.resource == "cloudwatch alarm"}
    assert alarms[70.0].status is DriftStatus.MATCH
    assert alarms[90.0].status is DriftStatus.DRIFT and "95" in alarms[90.0].actual
    # No RDS here: those settings are not read, and never count as a match.
    rds = [r for r in rows if r.resource.startswith("rds ")]
    assert rds and {r.status for r in rds} == {DriftStatus.NOT_READ}
