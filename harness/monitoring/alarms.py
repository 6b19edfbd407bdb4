"""Production alarms from thresholds.yaml: each threshold CloudWatch can watch becomes one alarm per level.

The same definitions are deployed to the emulator (`harness alarms deploy`), exported as Terraform and
CloudFormation (`harness alarms export`), evaluated against a run's series (semantics.py) and used by
the drills, so the levels the team signs off on locally are exactly the ones production pages on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.config import shipped_unit
from harness.monitoring.catalog import CloudWatchMetric, Resources, cloudwatch_metric, dimension_values
from harness.monitoring.semantics import AlarmRule, MissingData
from harness.sizing import postgres_sizing
from harness.thresholds import Threshold, ThresholdSet

PREFIX = "dbunit"
SEVERITIES = ("warning", "critical")

# A threshold states what must hold; the alarm fires when it does not.
_BREACH_OPERATOR = {
    "<": "GreaterThanOrEqualToThreshold",
    "<=": "GreaterThanThreshold",
    ">": "LessThanOrEqualToThreshold",
    ">=": "LessThanThreshold",
    # `count == 0` (the only equality the thresholds use): any occurrence breaches.
    "==": "GreaterThanThreshold",
}


@dataclass(frozen=True)
class AlarmDefinition:
    name: str
    threshold_id: str
    metric: str
    severity: str
    cloudwatch: CloudWatchMetric
    dimensions: tuple[tuple[str, str], ...]
    # In CloudWatch's unit (connections: a count of connections, not a %).
    threshold: float
    # The same rule in the harness metric's unit, for evaluating the local series.
    rule: AlarmRule
    description: str

    @property
    def comparison(self) -> str:
        return self.rule.comparison

    def topic_name(self) -> str:
        return f"{PREFIX}-alarms-{self.severity}"

    def with_period(self, period_s: int, evaluation_periods: int = 1, datapoints_to_alarm: int = 1) -> AlarmDefinition:
        """A drill's copy: high-resolution periods so a breach shows in seconds rather than minutes."""
        rule = replace(
            self.rule,
            period_s=period_s,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
        )
        return replace(self, name=f"{self.name}-drill", rule=rule)

    def drilled_on(self, dimension: str, value: str, level: float | None = None) -> AlarmDefinition:
        """A drill's copy watching a drill-only resource (a Lambda function of its own), optionally at a lower
        level: the production Duration level is minutes, which a drill in CI cannot wait for. Only for metrics
        whose CloudWatch unit is the harness's (no connections-style scaling)."""
        if self.cloudwatch.scale_by is not None and level is not None:
            raise ValueError(f"{self.name}: a scaled alarm ({self.cloudwatch.scale_by}) cannot take a drill level")
        dims = tuple((k, value if k == dimension else v) for k, v in self.dimensions)
        if dims == self.dimensions:
            raise ValueError(f"{self.name} has no dimension {dimension}")
        if level is None:
            return replace(self, dimensions=dims)
        return replace(self, dimensions=dims, threshold=level, rule=replace(self.rule, threshold=level))

    def metric_query(self) -> list[dict[str, Any]] | None:
        """Metric math for a ratio alarm (Lambda error rate), None for a single-metric alarm."""
        if self.cloudwatch.ratio_of is None:
            return None
        numerator, denominator = self.cloudwatch.ratio_of
        dims = [{"Name": k, "Value": v} for k, v in self.dimensions]

        def stat(metric_id: str, name: str) -> dict[str, Any]:
            return {
                "Id": metric_id,
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {"Namespace": self.cloudwatch.namespace, "MetricName": name, "Dimensions": dims},
                    "Period": self.rule.period_s,
                    "Stat": "Sum",
                },
            }

        return [
            stat("m1", numerator),
            stat("m2", denominator),
            {"Id": "e1", "Expression": "100 * m1 / m2", "Label": self.cloudwatch.name, "ReturnData": True},
        ]

    def put_kwargs(self, topic_arn: str) -> dict[str, Any]:
        """PutMetricAlarm's arguments: what the emulator and real CloudWatch both accept."""
        kwargs: dict[str, Any] = {
            "AlarmName": self.name,
            "AlarmDescription": self.description,
            "ComparisonOperator": self.comparison,
            "Threshold": self.threshold,
            "EvaluationPeriods": self.rule.evaluation_periods,
            "DatapointsToAlarm": self.rule.datapoints_to_alarm,
            "TreatMissingData": str(self.rule.treat_missing_data),
            "ActionsEnabled": True,
            "AlarmActions": [topic_arn],
            "OKActions": [topic_arn],
        }
        query = self.metric_query()
        if query is not None:
            kwargs["Metrics"] = query
            return kwargs
        kwargs |= {
            "Namespace": self.cloudwatch.namespace,
            "MetricName": self.cloudwatch.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Period": self.rule.period_s,
            "Statistic": self.rule.statistic,
        }
        return kwargs


def _scale(cw: CloudWatchMetric, db_instance_class: str) -> float:
    if cw.scale_by == "max_connections":
        return postgres_sizing(db_instance_class).max_connections / 100.0
    return 1.0


def alarm_definitions(
    thresholds: ThresholdSet, resources: Resources | None = None, db_instance_class: str | None = None
) -> list[AlarmDefinition]:
    """Every alarm the thresholds call for, warning before critical, in the file's order."""
    resources = resources or Resources()
    # The unit's class (unit.yaml) unless the caller sizes another: count alarms are in connections of it.
    db_instance_class = db_instance_class or shipped_unit().db_instance_class
    found = []
    for threshold in thresholds.thresholds:
        cw = cloudwatch_metric(threshold.metric)
        if cw is None:
            continue
        found.extend(_for_threshold(threshold, cw, resources, db_instance_class))
    return found


def _for_threshold(
    threshold: Threshold, cw: CloudWatchMetric, resources: Resources, db_instance_class: str
) -> list[AlarmDefinition]:
    settings = threshold.alarm
    found = []
    for severity in SEVERITIES:
        condition = threshold.warning if severity == "warning" else threshold.critical
        level = threshold.level(severity)
        if condition is None or level is None:
            continue
        comparison = _BREACH_OPERATOR[condition.comparator]
        n = settings.evaluation_periods or cw.evaluation_periods
        m = settings.datapoints_to_alarm or min(cw.datapoints_to_alarm, n)
        rule = AlarmRule(
            statistic=cw.statistic,
            comparison=comparison,
            threshold=level,
            period_s=settings.period_s or cw.period_s,
            evaluation_periods=n,
            datapoints_to_alarm=m,
            treat_missing_data=MissingData(settings.treat_missing_data or cw.treat_missing_data),
        )
        dims = tuple((d["Name"], d["Value"]) for d in dimension_values(threshold, cw, resources))
        found.append(
            AlarmDefinition(
                name=f"{PREFIX}-{threshold.id}-{severity}",
                threshold_id=threshold.id,
                metric=threshold.metric,
                severity=severity,
                cloudwatch=cw,
                dimensions=dims,
                threshold=round(level * _scale(cw, db_instance_class), 6),
                rule=rule,
                description=f"{severity}: {threshold.metric} must hold `{condition}` ({threshold.source})",
            )
        )
    return found


def alarm_metric_count(alarms: list[AlarmDefinition]) -> int:
    """What the CloudWatch free tier counts (10 free): one per metric an alarm watches, so a metric-math
    alarm over Errors and Invocations counts two."""
    return sum(2 if a.cloudwatch.ratio_of else 1 for a in alarms)
