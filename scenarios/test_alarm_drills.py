"""Alarm drills: for each alarm family, a real breach on the local unit drives the production alarm (with a
10-second high-resolution period) from OK to ALARM, a notification reaches an SQS queue subscribed to the
alarm's SNS topic, and the alarm returns to OK after recovery. Time-to-alarm goes to the results file.

Destructive (they exhaust connections, flood the cache with misses, load the CPU): refused on an
external deployment unless allowed. Each drill is bounded: every wait has a deadline, every load loop a
stop event and a time cap. The harness's own evaluator (CloudWatch semantics) judges the same samples,
and must agree that the alarm fired.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from harness.app.gdpr_deploy import DEFAULT_ROLE_ARN, RUNTIME
from harness.app.gdpr_invoke import lambda_client
from harness.backends.guard import require_destructive_allowed
from harness.measure.sampling import ResourceSampler, Samples
from harness.monitoring.alarms import AlarmDefinition, alarm_definitions
from harness.monitoring.drill import Drill, DrillTimes
from harness.monitoring.publish import AwsMetricPublisher
from harness.monitoring.semantics import datapoints, evaluate, ratio_datapoints
from harness.services.pgbouncer_admin import ProxyAdminUnavailable, release_server_connections
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

# Any one loop in a drill stops after this long even if nobody stops it.
LOOP_CAP_S = 90.0
SAMPLE_INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def production_alarms(stack, cloudwatch_session) -> dict[str, AlarmDefinition]:
    require_destructive_allowed(stack, "the alarm drills")
    if cloudwatch_session is not None:
        cloudwatch_session.record_emulator()
    facts = stack.facts.get("postgres", {})
    return {
        a.name: a
        for a in alarm_definitions(
            load_thresholds(DEFAULT_THRESHOLDS_FILE), db_instance_class=facts.get("instance_class", "db.t3.micro")
        )
    }


class Loop:
    """`work()` repeated on `threads` threads until stopped (or LOOP_CAP_S)."""

    def __init__(self, work: Callable[[threading.Event], None], threads: int = 1) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(work,), daemon=True) for _ in range(threads)]

    def _run(self, work: Callable[[threading.Event], None]) -> None:
        deadline = time.monotonic() + LOOP_CAP_S
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                work(self.stop)
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@contextmanager
def drilled(stack, alarm: AlarmDefinition) -> Iterator[tuple[Drill, Samples]]:
    drill = Drill(stack.aws, alarm)
    publisher = AwsMetricPublisher(stack)
    try:
        with ResourceSampler(stack, interval_s=SAMPLE_INTERVAL_S, on_sample=publisher).running() as samples:
            yield drill, samples
        assert not publisher.failures, publisher.failures
    finally:
        drill.close()


def record(results, family: str, times: DrillTimes) -> None:
    labels = {"family": family, "period_s": 10}
    for metric, value in (
        ("alarm_drill.time_to_alarm_s", times.time_to_alarm_s),
        ("alarm_drill.time_to_notification_s", times.time_to_notification_s),
        ("alarm_drill.time_to_ok_s", times.time_to_ok_s),
    ):
        if value is not None:
            results.record_value(metric, value, labels)
    print(
        f"drill {family}: ALARM after {times.time_to_alarm_s:.1f} s, notification after "
        f"{times.time_to_notification_s or float('nan'):.1f} s, OK {times.time_to_ok_s or float('nan'):.1f} s "
        "after recovery (10 s periods, 1 of 1)"
    )


def assert_drill(times: DrillTimes) -> None:
    assert times.alarm_at is not None and times.alarm_notified_at is not None, times
    assert times.ok_at is not None, times
    states = [n.state for n in times.notifications]
    assert "ALARM" in states and "OK" in states[states.index("ALARM") :], states


def test_cache_hit_rate_drill_cold_uniform_reads_alarm_and_recover(stack, production_alarms, results):
    alarm = production_alarms["dbunit-cache.hit_rate_pct-critical"]
    redis = stack.redis.client()
    hot = f"drill:{uuid.uuid4().hex}"
    redis.set(hot, "1", ex=300)
    mode = {"miss": False}

    def reads(stop: threading.Event) -> None:
        for _ in range(50):
            # Uniform over keys never written: every read is a miss; otherwise one hot key: every read a hit.
            redis.get(f"drill:cold:{uuid.uuid4().hex}" if mode["miss"] else hot)
        time.sleep(0.01)

    loop = Loop(reads)
    loop.start()
    try:
        with drilled(stack, alarm) as (drill, samples):
            times = drill.run(lambda: mode.update(miss=True), lambda: mode.update(miss=False))
    finally:
        loop.end()
        redis.delete(hot)
        redis.close()
    assert not loop.errors, loop.errors
    assert_drill(times)
    record(results, "cache_hit_rate", times)
    # The harness's own evaluator sees the same breach in the same samples.
    hits = samples.series("redis.keyspace_hits")
    misses = dict(samples.series("redis.keyspace_misses"))
    intervals = [
        (t, int(h - h0), int(h - h0 + misses[t] - misses[t0]))
        for (t0, h0), (t, h) in itertools.pairwise(hits)
        if t in misses and t0 in misses
    ]
    outcome = evaluate(
        ratio_datapoints(intervals, alarm.rule.with_period(10), hits[0][0], hits[-1][0]), alarm.with_period(10).rule
    )
    assert outcome.fired, [e.reason for e in outcome.evaluations]


def test_rds_connections_drill_direct_connections_past_ninety_percent(stack, production_alarms, results):
    alarm = production_alarms["dbunit-rds.connections_pct-critical"]
    max_connections = int(stack.facts["postgres"]["max_connections"])
    # The proxy's idle server connections would take slots the drill needs.
    with contextlib.suppress(ProxyAdminUnavailable):
        release_server_connections(stack)
    held = []
    needed = int(alarm.threshold) + 2

    def hold() -> None:
        # Stops short of max_connections so the sampler's own connection still fits.
        while len(held) < min(needed, max_connections - 2):
            held.append(stack.direct.connect(autocommit=True, connect_timeout=10))

    def release() -> None:
        while held:
            held.pop().close()

    try:
        with drilled(stack, alarm) as (drill, samples):
            times = drill.run(hold, release, timeout_s=60)
    finally:
        release()
    assert_drill(times)
    record(results, "rds_connections", times)
    rule = alarm.with_period(10).rule
    series = samples.series("pg.connections_pct")
    assert evaluate(datapoints(series, rule, series[0][0], series[-1][0]), rule).fired


def test_rds_cpu_drill_cpu_heavy_statements_on_the_capped_instance(stack, production_alarms, results):
    alarm = production_alarms["dbunit-rds.cpu_pct-warning"]
    vcpus = int(stack.facts["postgres"].get("vcpus") or 2)

    def burn(stop: threading.Event) -> None:
        with stack.direct.connect(autocommit=True, prepare_threshold=None) as conn:
            conn.execute("SET statement_timeout = '10s'")
            while not stop.is_set():
                conn.execute("SELECT sum(i::bigint * i) FROM generate_series(1, 2000000) i")

    # Twice the vCPUs: on a shared host the instance's cap is not the only limit, and more runnable backends
    # win it a larger share; the cgroup still caps the instance at its vCPUs.
    burners = 2 * vcpus
    loop = Loop(burn, threads=burners)
    try:
        with drilled(stack, alarm) as (drill, samples):
            try:
                times = drill.run(loop.start, loop.end, timeout_s=40)
            except AssertionError:
                peak = samples.peak("postgres.cpu_pct") if samples.series("postgres.cpu_pct") else 0.0
                if peak < alarm.rule.threshold:
                    # Not a pass: the breach never happened, so the alarm could not be tested.
                    pytest.skip(
                        f"the host gave PostgreSQL at most {peak:.0f} % of its {vcpus} vCPUs under {burners} "
                        f"CPU-bound statements (shared machine); the {alarm.rule.threshold:g} % level was never "
                        "breached, so the CPU alarm was not drilled"
                    )
                raise
    finally:
        loop.end()
    assert not loop.errors, loop.errors
    assert_drill(times)
    record(results, "rds_cpu", times)


DRILL_FUNCTION = "dbunit-drill-errors"
# A drill-only function (never a hook inside the GDPR functions): fails when asked to.
DRILL_CODE = (
    "def handler(event, context):\n"
    "    if event.get('fail'):\n"
    "        raise RuntimeError('alarm drill: deliberate failure')\n"
    "    return {'ok': True}\n"
)
PHASE_S = 15.0


def drill_function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("drill.py", DRILL_CODE)
    return buffer.getvalue()


def test_lambda_error_rate_drill_failing_invocations_fire_the_metric_math_alarm(stack, production_alarms, results):
    """The error-rate alarm is metric math (100 * Errors / Invocations). ministack stores such alarms but never
    evaluates them (NOT EMULATED), so this drill checks the other half: the runtime's AWS/Lambda metrics, read
    back from the emulator per 10-second period, make CloudWatch's semantics go OK -> ALARM -> OK."""
    alarm = production_alarms["dbunit-lambda.audit_logging.error_rate_pct-critical"].with_period(10)
    client = lambda_client(stack.aws)
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_function(FunctionName=DRILL_FUNCTION)
    client.create_function(
        FunctionName=DRILL_FUNCTION,
        Runtime=RUNTIME,
        Handler="drill.handler",
        Role=DEFAULT_ROLE_ARN,
        Code={"ZipFile": drill_function_zip()},
        MemorySize=128,
        Timeout=10,
    )
    client.get_waiter("function_active_v2").wait(FunctionName=DRILL_FUNCTION)
    phases: dict[str, float] = {}
    try:
        start = time.time()
        for phase, fail in (("ok", False), ("breach", True), ("recovery", False)):
            phases[phase] = time.time()
            deadline = time.monotonic() + PHASE_S
            while time.monotonic() < deadline:
                answer = client.invoke(FunctionName=DRILL_FUNCTION, Payload=json.dumps({"fail": fail}).encode())
                assert ("FunctionError" in answer) == fail, answer.get("FunctionError")
                time.sleep(0.2)
        end = time.time()
        # The runtime publishes off the invoke path every 0.5 s: give the last batch time to land.
        time.sleep(2.0)
        cw = stack.aws.client("cloudwatch")

        def sums(metric: str) -> dict[float, float]:
            answer = cw.get_metric_statistics(
                Namespace="AWS/Lambda",
                MetricName=metric,
                Dimensions=[{"Name": "FunctionName", "Value": DRILL_FUNCTION}],
                StartTime=datetime.fromtimestamp(start - 10, UTC),
                EndTime=datetime.fromtimestamp(end + 10, UTC),
                Period=10,
                Statistics=["Sum"],
            )
            return {d["Timestamp"].timestamp(): d["Sum"] for d in answer["Datapoints"]}

        errors, invocations = sums("Errors"), sums("Invocations")
    finally:
        client.delete_function(FunctionName=DRILL_FUNCTION)
    assert invocations, "the Lambda runtime published no Invocations for the drill function"
    intervals = [(t + 1.0, int(errors.get(t, 0)), int(n)) for t, n in sorted(invocations.items())]
    outcome = evaluate(ratio_datapoints(intervals, alarm.rule, start, end), alarm.rule)
    first = outcome.first_alarm
    assert first is not None, [e.reason for e in outcome.evaluations]
    assert first.at >= phases["breach"], "the alarm fired before any invocation failed"
    assert outcome.evaluations[-1].state == "OK", outcome.evaluations[-1].reason
    time_to_alarm = first.at - phases["breach"]
    results.record_value("alarm_drill.time_to_alarm_s", time_to_alarm, {"family": "lambda_error_rate", "period_s": 10})
    print(
        f"drill lambda_error_rate: ALARM (harness evaluator) {time_to_alarm:.1f} s after the first failure; "
        "NOT EMULATED: ministack never evaluates metric-math alarms, so no SNS notification"
    )
