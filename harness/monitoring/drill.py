"""Alarm drills: put a production alarm (with a high-resolution period) on the emulator, subscribe an SQS
queue to its topic, cause a real breach, and time OK -> ALARM -> notification -> OK.

A drill alarm is the production definition with Period 10 s and 1 of 1 datapoints, so a drill takes
seconds rather than the production alarm's minutes; the report says so. The emulator evaluates on every
PutMetricData (the publisher puts one per sampler tick), not on a clock, so the OK after recovery needs
the sampler to keep publishing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.endpoints import AwsEndpoint
from harness.measure.results import ResultsWriter
from harness.monitoring.alarms import PREFIX, AlarmDefinition
from harness.monitoring.deploy import CLIENT_CONFIG
from harness.monitoring.semantics import ALARM, OK

DRILL_PERIOD_S = 10
POLL_S = 0.25
# The run fact each drill writes its outcome under (`run.alarm_drills.<family>`): the checklist's
# "Alarms configured and tested" reads it, and a drill that did not run has no entry there.
DRILL_FACT = "alarm_drills"
# Every alarm family the document's thresholds alarm on, each with a drill in scenarios/test_alarm_drills.py.
FAMILIES = ("rds_cpu", "rds_connections", "cache_hit_rate", "lambda_error_rate", "lambda_duration")
PASSED = "PASS"
FAILED = "FAIL"
# The breach could not be caused (a shared host never gave PostgreSQL the CPU): the alarm was not tested.
NOT_BREACHED = "NOT BREACHED"


class DrillTimeout(AssertionError):
    """The alarm did not reach the state in time; the message carries what it last saw."""


@dataclass
class Notification:
    received: float
    state: str
    alarm: str


@dataclass
class DrillTimes:
    """Seconds from the start of the breach (or of the recovery) to each observation."""

    breach_started: float = 0.0
    alarm_at: float | None = None
    alarm_notified_at: float | None = None
    recovery_started: float = 0.0
    ok_at: float | None = None
    ok_notified_at: float | None = None
    notifications: list[Notification] = field(default_factory=list)

    @property
    def time_to_alarm_s(self) -> float | None:
        return None if self.alarm_at is None else self.alarm_at - self.breach_started

    @property
    def time_to_notification_s(self) -> float | None:
        return None if self.alarm_notified_at is None else self.alarm_notified_at - self.breach_started

    @property
    def time_to_ok_s(self) -> float | None:
        return None if self.ok_at is None else self.ok_at - self.recovery_started


class Drill:
    """One drill alarm with its own topic and queue; `close()` deletes all three."""

    def __init__(self, aws: AwsEndpoint, production: AlarmDefinition, already_drill: bool = False) -> None:
        """`production` is copied with the drill's period, unless `already_drill` says it is a drill copy."""
        from botocore.config import Config

        config = Config(**CLIENT_CONFIG)
        self.cloudwatch = aws.client("cloudwatch", config=config)
        self.sns = aws.client("sns", config=config)
        self.sqs = aws.client("sqs", config=config)
        self.alarm = production if already_drill else production.with_period(DRILL_PERIOD_S)
        suffix = uuid.uuid4().hex[:8]
        self.topic_arn = self.sns.create_topic(Name=f"{PREFIX}-drill-{suffix}")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName=f"{PREFIX}-drill-{suffix}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.subscription = self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)[
            "SubscriptionArn"
        ]
        self.cloudwatch.put_metric_alarm(**self.alarm.put_kwargs(self.topic_arn))
        self.times = DrillTimes()

    def state(self) -> str:
        found = self.cloudwatch.describe_alarms(AlarmNames=[self.alarm.name])["MetricAlarms"]
        return str(found[0]["StateValue"]) if found else "MISSING"

    def _drain(self) -> None:
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in answer.get("Messages", []):
            body = json.loads(message["Body"])
            inner = json.loads(body.get("Message", "{}")) if isinstance(body, dict) else {}
            self.times.notifications.append(
                Notification(time.time(), str(inner.get("NewStateValue")), str(inner.get("AlarmName")))
            )
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, wanted: str, timeout_s: float, since: float) -> tuple[float, float | None]:
        """(when the alarm reached `wanted`, when its notification arrived), both Unix times; the
        notification may lag the state by a poll."""
        deadline = time.monotonic() + timeout_s
        state_at: float | None = None
        seen = "never polled"
        while time.monotonic() < deadline:
            seen = self.state()
            if state_at is None and seen == wanted:
                state_at = time.time()
            self._drain()
            notified = next(
                (n.received for n in self.times.notifications if n.state == wanted and n.received >= since), None
            )
            if state_at is not None and notified is not None:
                return state_at, notified
            time.sleep(POLL_S)
        if state_at is not None:
            return state_at, None
        raise DrillTimeout(f"{self.alarm.name} did not reach {wanted} within {timeout_s:.0f} s (last state {seen})")

    def run(
        self,
        breach: Callable[[], Any],
        recover: Callable[[], Any],
        timeout_s: float = 45.0,
        baseline: bool = True,
        hold_s: float = 2.5 * DRILL_PERIOD_S,
    ) -> DrillTimes:
        """`breach()` starts the fault (it must return at once, work in the background); `recover()` ends it."""
        if baseline:
            self.wait_for(OK, timeout_s, 0.0)
        self.times.breach_started = time.time()
        breach()
        self.times.alarm_at, self.times.alarm_notified_at = self.wait_for(ALARM, timeout_s, self.times.breach_started)
        # The emulator alarms on the last 10 s of points; CloudWatch (and the harness's evaluator) on clock-aligned
        # periods, which a breach of a few seconds only dilutes. Holding it past two whole periods lets both see it.
        remaining = self.times.breach_started + hold_s - time.time()
        if remaining > 0:
            time.sleep(remaining)
        self.times.recovery_started = time.time()
        recover()
        self.times.ok_at, self.times.ok_notified_at = self.wait_for(OK, timeout_s, self.times.recovery_started)
        return self.times

    def close(self) -> None:
        calls: list[tuple[Callable[..., Any], dict[str, Any]]] = [
            (self.cloudwatch.delete_alarms, {"AlarmNames": [self.alarm.name]}),
            (self.sns.unsubscribe, {"SubscriptionArn": self.subscription}),
            (self.sns.delete_topic, {"TopicArn": self.topic_arn}),
            (self.sqs.delete_queue, {"QueueUrl": self.queue_url}),
        ]
        for call, kwargs in calls:
            # Best effort: a drill's leftovers must not hide the drill's own failure.
            try:
                call(**kwargs)
            except Exception:
                continue


@dataclass(frozen=True)
class DrillOutcome:
    """What one drill showed, as the results file keeps it."""

    family: str
    status: str
    alarm: str
    # The level the drill alarm used, in CloudWatch's unit, and the production alarm's level.
    level: float
    production_level: float
    period_s: int
    # "emulator and harness evaluator", or "harness evaluator" with the NOT EMULATED reason.
    judged_by: str
    evidence: str
    time_to_alarm_s: float | None = None
    time_to_notification_s: float | None = None
    time_to_ok_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def record_outcome(results: ResultsWriter, outcome: DrillOutcome) -> None:
    """The outcome as a run fact, and its times as `alarm_drill.*` gauges labelled by family."""
    results.update_run({DRILL_FACT: {outcome.family: outcome.as_json()}})
    labels: dict[str, str | int | float] = {"family": outcome.family, "period_s": outcome.period_s}
    for metric, value in (
        ("alarm_drill.time_to_alarm_s", outcome.time_to_alarm_s),
        ("alarm_drill.time_to_notification_s", outcome.time_to_notification_s),
        ("alarm_drill.time_to_ok_s", outcome.time_to_ok_s),
    ):
        if value is not None:
            results.record_value(metric, value, labels)
