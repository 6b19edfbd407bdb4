"""Put the alarms, their SNS topics and the dashboards on a stack's CloudWatch (the emulator, or AWS when asked).

Idempotent: topics are created by name (SNS returns the existing ARN), alarms and dashboards are put
over their previous versions, and alarms with our prefix that the thresholds no longer call for are
deleted, so the stack always carries exactly the levels of the thresholds file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.endpoints import AwsEndpoint
from harness.monitoring.alarms import PREFIX, SEVERITIES, AlarmDefinition
from harness.monitoring.dashboards import body_text

# Both are passed straight to the clients; the emulator answers in milliseconds, AWS within seconds.
CLIENT_CONFIG = {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 2}}


def clients(aws: AwsEndpoint) -> tuple[Any, Any]:
    from botocore.config import Config

    config = Config(**CLIENT_CONFIG)
    return aws.client("cloudwatch", config=config), aws.client("sns", config=config)


@dataclass(frozen=True)
class Deployed:
    topics: dict[str, str]
    alarms: list[str]
    deleted: list[str]
    dashboards: list[str]


def ensure_topics(sns: Any) -> dict[str, str]:
    return {s: sns.create_topic(Name=f"{PREFIX}-alarms-{s}")["TopicArn"] for s in SEVERITIES}


def put_alarm(cloudwatch: Any, alarm: AlarmDefinition, topic_arn: str) -> None:
    cloudwatch.put_metric_alarm(**alarm.put_kwargs(topic_arn))


def deploy(aws: AwsEndpoint, alarms: Sequence[AlarmDefinition], dashboards: dict[str, dict[str, Any]]) -> Deployed:
    cloudwatch, sns = clients(aws)
    topics = ensure_topics(sns)
    for alarm in alarms:
        put_alarm(cloudwatch, alarm, topics[alarm.severity])
    wanted = {a.name for a in alarms}
    stale = [a["AlarmName"] for a in describe(cloudwatch) if a["AlarmName"] not in wanted]
    if stale:
        cloudwatch.delete_alarms(AlarmNames=stale)
    for name, body in dashboards.items():
        cloudwatch.put_dashboard(DashboardName=name, DashboardBody=body_text(body))
    return Deployed(topics, sorted(wanted), stale, sorted(dashboards))


def describe(cloudwatch: Any, prefix: str = f"{PREFIX}-") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix):
        found.extend(page.get("MetricAlarms", []))
    return found


def emulator_alarm_record(aws: AwsEndpoint, names: Sequence[str], since: float) -> dict[str, Any]:
    """Each alarm's current state on the emulator and when it first went to ALARM after `since` (None if
    it did not), from its StateUpdate history: the facts the sign-off's cross-check compares."""
    cloudwatch, _ = clients(aws)
    states = {a["AlarmName"]: a["StateValue"] for a in describe(cloudwatch)}
    first_alarm: dict[str, float | None] = {name: None for name in names}
    for name in names:
        pages = cloudwatch.get_paginator("describe_alarm_history").paginate(
            AlarmName=name, HistoryItemType="StateUpdate", StartDate=datetime.fromtimestamp(since, UTC)
        )
        for page in pages:
            for item in page.get("AlarmHistoryItems", []):
                data = json.loads(item.get("HistoryData") or "{}")
                at = item["Timestamp"].timestamp()
                if data.get("newState", {}).get("stateValue") == "ALARM" and at >= since:
                    current = first_alarm[name]
                    first_alarm[name] = at if current is None else min(current, at)
    return {"since": since, "states": {n: states.get(n) for n in names}, "first_alarm": first_alarm}
