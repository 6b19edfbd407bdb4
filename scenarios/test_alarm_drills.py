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
import os
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from harness.app.gdpr_deploy import DEFAULT_ROLE_ARN, RUNTIME
from harness.app.gdpr_invoke import lambda_client
from harness.backends.guard import require_destructive_allowed
from harness.measure.sampling import ResourceSampler, Samples
from harness.monitoring.alarms import AlarmDefinition, alarm_definitions
from harness.monitoring.drill import (
    DRILL_PERIOD_S,
    FAILED,
    NOT_BREACHED,
    PASSED,
    Drill,
    DrillOutcome,
    DrillTimes,
    record_outcome,
)
from harness.monitoring.publish import AwsMetricPublisher
from harness.monitoring.semantics import Datapoint, Outcome, datapoints, evaluate, period_start, ratio_datapoints
from harness.services.cgroups import CgroupLimiter
from harness.services.containers import ContainerUnreadable, compose_containers, cpu_shares, set_cpu_shares
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
    """`work()` repeated on `threads` threads until stopped (or `cap_s`)."""

    def __init__(self, work: Callable[[threading.Event], None], threads: int = 1, cap_s: float = LOOP_CAP_S) -> None:
        self.cap_s = cap_s
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(work,), daemon=True) for _ in range(threads)]

    def _run(self, work: Callable[[threading.Event], None]) -> None:
        deadline = time.monotonic() + self.cap_s
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
        # A drill that failed before its breach never started them: its own error is the one to see.
        for thread in self.threads:
            if thread.ident is not None:
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


EMULATED = "emulator and harness evaluator"


def assert_drill(times: DrillTimes) -> None:
    assert times.alarm_at is not None and times.alarm_notified_at is not None, times
    assert times.ok_at is not None, times
    states = [n.state for n in times.notifications]
    assert "ALARM" in states and "OK" in states[states.index("ALARM") :], states


@contextmanager
def outcome_recorded(results, family: str, alarm: AlarmDefinition, production: AlarmDefinition) -> Iterator[None]:
    """A drill that raises is recorded as FAIL with what it saw; a skipped one records its own reason."""
    try:
        yield
    except pytest.skip.Exception:
        raise
    except BaseException as exc:
        record_outcome(
            results,
            DrillOutcome(
                family,
                FAILED,
                alarm.name,
                alarm.threshold,
                production.threshold,
                alarm.rule.period_s,
                EMULATED,
                f"{type(exc).__name__}: {str(exc)[:400]}",
            ),
        )
        raise


def record(
    results, family: str, times: DrillTimes, alarm: AlarmDefinition, production: AlarmDefinition, note: str = ""
) -> None:
    evidence = (
        f"OK -> ALARM after {times.time_to_alarm_s:.1f} s, SQS notification after "
        f"{times.time_to_notification_s or float('nan'):.1f} s, OK {times.time_to_ok_s or float('nan'):.1f} s after "
        f"recovery ({alarm.rule.period_s} s periods, 1 of 1{note})"
    )
    record_outcome(
        results,
        DrillOutcome(
            family,
            PASSED,
            alarm.name,
            alarm.threshold,
            production.threshold,
            alarm.rule.period_s,
            EMULATED,
            evidence,
            times.time_to_alarm_s,
            times.time_to_notification_s,
            times.time_to_ok_s,
        ),
    )
    print(f"drill {family}: {evidence}")


def test_cache_hit_rate_drill_cold_uniform_reads_alarm_and_recover(stack, production_alarms, results):
    production = production_alarms["dbunit-cache.hit_rate_pct-critical"]
    alarm = production.with_period(DRILL_PERIOD_S)
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
    with outcome_recorded(results, "cache_hit_rate", alarm, production):
        loop.start()
        try:
            with drilled(stack, production) as (drill, samples):
                times = drill.run(lambda: mode.update(miss=True), lambda: mode.update(miss=False))
        finally:
            loop.end()
            redis.delete(hot)
            redis.close()
        assert not loop.errors, loop.errors
        assert_drill(times)
        # The harness's own evaluator sees the same breach in the same samples.
        hits = samples.series("redis.keyspace_hits")
        misses = dict(samples.series("redis.keyspace_misses"))
        intervals = [
            (t, int(h - h0), int(h - h0 + misses[t] - misses[t0]))
            for (t0, h0), (t, h) in itertools.pairwise(hits)
            if t in misses and t0 in misses
        ]
        outcome = evaluate(ratio_datapoints(intervals, alarm.rule, hits[0][0], hits[-1][0]), alarm.rule)
        assert outcome.fired, [e.reason for e in outcome.evaluations]
    record(results, "cache_hit_rate", times, alarm, production)


def test_rds_connections_drill_direct_connections_past_ninety_percent(stack, production_alarms, results):
    production = production_alarms["dbunit-rds.connections_pct-critical"]
    alarm = production.with_period(DRILL_PERIOD_S)
    max_connections = int(stack.facts["postgres"]["max_connections"])
    # The proxy's idle server connections would take slots the drill needs.
    with contextlib.suppress(ProxyAdminUnavailable):
        release_server_connections(stack)
    held = []
    needed = int(production.threshold) + 2

    def hold() -> None:
        # Stops short of max_connections so the sampler's own connection still fits.
        while len(held) < min(needed, max_connections - 2):
            held.append(stack.direct.connect(autocommit=True, connect_timeout=10))

    def release() -> None:
        while held:
            held.pop().close()

    with outcome_recorded(results, "rds_connections", alarm, production):
        try:
            with drilled(stack, production) as (drill, samples):
                times = drill.run(hold, release, timeout_s=60)
        finally:
            release()
        assert_drill(times)
        series = samples.series("pg.connections_pct")
        assert evaluate(datapoints(series, alarm.rule, series[0][0], series[-1][0]), alarm.rule).fired
    record(results, "rds_connections", times, alarm, production)


CPU_BREACH_TIMEOUT_S = 60.0


@contextmanager
def weighted_as_its_backends(stack, backends: int) -> Iterator[str]:
    """PostgreSQL's cgroup given the CPU weight of `backends` processes for the drill, then its own back.

    The host's scheduler counts a cgroup once against every other runnable task, so on a shared host a capped
    instance running four CPU-bound statements got the share of one process (10 % of its 2 vCPUs at load
    average 16, measured): the drill could never breach. Its cap (2 vCPUs) still holds."""
    facts = stack.facts.get("cgroup") or {}
    name = facts.get("detail") if facts.get("enforced") else None
    if not name and stack.backend == "compose":
        with container_weighted(str(stack.facts["project"]), backends) as done:
            yield done
        return
    if not name:
        yield "no cgroup holds PostgreSQL: its backends compete as plain processes"
        return
    group = CgroupLimiter(str(name))
    before = group.cpu_weight()
    if before is None:
        yield f"the weight of cgroup {name} is unreadable: left as it is"
        return
    try:
        group.set_cpu_weight(before * backends)
    except OSError as exc:
        yield f"the weight of cgroup {name} could not be raised ({exc}): left at {before}"
        return
    try:
        yield f"cgroup CPU weight {before} -> {before * backends} during the drill, cap unchanged"
    finally:
        group.set_cpu_weight(before)


@contextmanager
def container_weighted(project: str, backends: int) -> Iterator[str]:
    """The compose stack's PostgreSQL container given the CPU weight of `backends` processes, through the engine,
    then its own back: the container's group meets the host's other tasks as the embedded stack's cgroup does."""
    try:
        container = compose_containers(project)["postgres"].container_id
        before = cpu_shares(container)
        set_cpu_shares(container, before * backends)
    except (ContainerUnreadable, KeyError) as exc:
        yield f"the PostgreSQL container's CPU weight could not be raised ({exc}): left as it was"
        return
    try:
        yield f"container CPU shares {before} -> {before * backends} during the drill, cap unchanged"
    finally:
        set_cpu_shares(container, before)


def test_rds_cpu_drill_cpu_heavy_statements_on_the_capped_instance(stack, production_alarms, results):
    """Passes, fails, or (when the host never gives PostgreSQL the CPU) records NOT BREACHED with the figures
    and skips: never a silent pass. Whether the level was breached is decided by the harness's evaluator on the
    drill's own samples (10-second Average datapoints, as the drill alarm), not by a single sample's peak."""
    production = production_alarms["dbunit-rds.cpu_pct-warning"]
    alarm = production.with_period(DRILL_PERIOD_S)
    vcpus = int(stack.facts["postgres"].get("vcpus") or 2)

    def burn(stop: threading.Event) -> None:
        with stack.direct.connect(autocommit=True, prepare_threshold=None) as conn:
            conn.execute("SET statement_timeout = '10s'")
            while not stop.is_set():
                # Short statements, so a stop is seen within a second; on a starved host one may still hit the
                # timeout, which only bounds it: the CPU it burnt is the point.
                with contextlib.suppress(psycopg.errors.QueryCanceled):
                    conn.execute("SELECT sum(i::bigint * i) FROM generate_series(1, 500000) i")

    # Twice the vCPUs: on a shared host the instance's cap is not the only limit, and more runnable backends
    # win it a larger share; the cgroup still caps the instance at its vCPUs.
    burners = 2 * vcpus
    loop = Loop(burn, threads=burners)
    failure: AssertionError | None = None
    with outcome_recorded(results, "rds_cpu", alarm, production):
        try:
            with weighted_as_its_backends(stack, burners) as weighting, drilled(stack, production) as (drill, samples):
                try:
                    times = drill.run(loop.start, loop.end, timeout_s=CPU_BREACH_TIMEOUT_S)
                except AssertionError as exc:
                    failure = exc
        finally:
            loop.end()
        assert not loop.errors, loop.errors
        series = samples.series("postgres.cpu_pct")
        assert series, f"the sampler read no PostgreSQL CPU: {samples.unavailable}"
        judged = evaluate(datapoints(series, alarm.rule, series[0][0], series[-1][0]), alarm.rule)
        if not judged.fired:
            # The emulator alarms on its last 10 s of points, so CPU hovering at the level can fire it while no
            # clock-aligned period's Average (CloudWatch's, and the harness evaluator's) reaches the level.
            emulator = "the emulator's alarm did not fire" if failure is not None else "the emulator's alarm fired"
            best = max((d.value for d in judged_points(judged) if d.value is not None), default=0.0)
            reason = (
                f"the best 10 s Average of PostgreSQL's CPU was {best:.0f} % (peak sample "
                f"{max(v for _, v in series):.0f} %) of its {vcpus} vCPUs under {burners} CPU-bound statements "
                f"for {CPU_BREACH_TIMEOUT_S:.0f} s ({weighting}), against the {production.threshold:g} % level "
                f"({emulator}); host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. The CPU "
                "alarm was not tested."
            )
            record_outcome(
                results,
                DrillOutcome(
                    "rds_cpu",
                    NOT_BREACHED,
                    alarm.name,
                    alarm.threshold,
                    production.threshold,
                    DRILL_PERIOD_S,
                    EMULATED,
                    reason,
                ),
            )
            pytest.skip(reason)
        if failure is not None:
            # The harness's evaluator saw the breach and the emulator's alarm did not follow: a real failure.
            raise AssertionError(f"the 10 s CPU level was breached ({judged.first_alarm}) but: {failure}")
        assert_drill(times)
    record(results, "rds_cpu", times, alarm, production, f"; {weighting}")


def judged_points(outcome: Outcome) -> list[Datapoint]:
    return [d for e in outcome.evaluations for d in e.window]


def drill_function_zip(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("drill.py", code)
    return buffer.getvalue()


@contextmanager
def drill_function(stack, name: str, code: str, timeout_s: int) -> Iterator[Any]:
    """A drill-only function (never a hook inside the GDPR functions), deployed for the drill and deleted after."""
    client = lambda_client(stack.aws)
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_function(FunctionName=name)
    client.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Handler="drill.handler",
        Role=DEFAULT_ROLE_ARN,
        Code={"ZipFile": drill_function_zip(code)},
        MemorySize=128,
        Timeout=timeout_s,
    )
    try:
        client.get_waiter("function_active_v2").wait(FunctionName=name)
        yield client
    finally:
        client.delete_function(FunctionName=name)


def lambda_sums(stack, function: str, metric: str, statistic: str, start: float, end: float) -> dict[float, float]:
    """The AWS/Lambda metric the runtime published for `function`, per 10 s period, read back from the emulator."""
    answer = stack.aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=datetime.fromtimestamp(start - 10, UTC),
        EndTime=datetime.fromtimestamp(end + 10, UTC),
        Period=10,
        Statistics=[statistic],
    )
    return {d["Timestamp"].timestamp(): d[statistic] for d in answer["Datapoints"]}


ERRORS_FUNCTION = "dbunit-drill-errors"
ERRORS_CODE = (
    "def handler(event, context):\n"
    "    if event.get('fail'):\n"
    "        raise RuntimeError('alarm drill: deliberate failure')\n"
    "    return {'ok': True}\n"
)
PHASE_S = 15.0
METRIC_MATH_NOT_EMULATED = (
    "harness evaluator (NOT EMULATED: ministack stores metric-math alarms but never evaluates them, so no "
    "alarm state and no SNS notification)"
)


def test_lambda_error_rate_drill_failing_invocations_fire_the_metric_math_alarm(stack, production_alarms, results):
    """The error-rate alarm is metric math (100 * Errors / Invocations). ministack stores such alarms but never
    evaluates them (NOT EMULATED), so this drill checks the other half: the runtime's AWS/Lambda metrics, read
    back from the emulator per 10-second period, make CloudWatch's semantics go OK -> ALARM -> OK."""
    production = production_alarms["dbunit-lambda.audit_logging.error_rate_pct-critical"]
    alarm = production.with_period(DRILL_PERIOD_S)
    phases: dict[str, float] = {}
    with outcome_recorded(results, "lambda_error_rate", alarm, production):
        with drill_function(stack, ERRORS_FUNCTION, ERRORS_CODE, 10) as client:
            start = time.time()
            for phase, fail in (("ok", False), ("breach", True), ("recovery", False)):
                phases[phase] = time.time()
                deadline = time.monotonic() + PHASE_S
                while time.monotonic() < deadline:
                    answer = client.invoke(FunctionName=ERRORS_FUNCTION, Payload=json.dumps({"fail": fail}).encode())
                    assert ("FunctionError" in answer) == fail, answer.get("FunctionError")
                    time.sleep(0.2)
            end = time.time()
            # The runtime publishes off the invoke path every 0.5 s: give the last batch time to land.
            time.sleep(2.0)
            errors = lambda_sums(stack, ERRORS_FUNCTION, "Errors", "Sum", start, end)
            invocations = lambda_sums(stack, ERRORS_FUNCTION, "Invocations", "Sum", start, end)
        assert invocations, "the Lambda runtime published no Invocations for the drill function"
        intervals = [(t + 1.0, int(errors.get(t, 0)), int(n)) for t, n in sorted(invocations.items())]
        outcome = evaluate(ratio_datapoints(intervals, alarm.rule, start, end), alarm.rule)
        first = outcome.first_alarm
        assert first is not None, [e.reason for e in outcome.evaluations]
        assert first.at >= phases["breach"], "the alarm fired before any invocation failed"
        assert outcome.evaluations[-1].state == "OK", outcome.evaluations[-1].reason
    time_to_alarm = first.at - phases["breach"]
    evidence = (
        f"OK -> ALARM {time_to_alarm:.1f} s after the first failure, back to OK after recovery, by the harness's "
        "evaluator over the AWS/Lambda Errors and Invocations read back from the emulator (10 s periods, 1 of 1)"
    )
    record_outcome(
        results,
        DrillOutcome(
            "lambda_error_rate",
            PASSED,
            alarm.name,
            alarm.threshold,
            production.threshold,
            DRILL_PERIOD_S,
            METRIC_MATH_NOT_EMULATED,
            evidence,
            time_to_alarm,
        ),
    )
    print(f"drill lambda_error_rate: {evidence}; {METRIC_MATH_NOT_EMULATED}")


DURATION_FUNCTION = "dbunit-drill-duration"
DURATION_CODE = (
    "import time\n"
    "def handler(event, context):\n"
    "    time.sleep(float(event.get('sleep_s', 0)))\n"
    "    return {'slept_s': event.get('sleep_s', 0)}\n"
)
# How far past the level the one slow invocation sleeps: the runtime's own overhead must not decide it.
DURATION_MARGIN_S = 1.5


def test_lambda_duration_drill_one_slow_invocation_fires_the_duration_alarm(stack, production_alarms, results, size):
    """A drill-only function sleeps past the Duration level once, between quick invocations: AWS/Lambda
    Duration (Maximum) goes OK -> ALARM -> SQS notification -> OK on the emulator, and the harness's evaluator
    agrees on the Duration datapoints read back. At the ci size the drill alarm's level is lowered (the
    production level is 180 s per invocation, which CI cannot wait for); at the signoff size it is the
    production level itself. Duration is only known when an invocation ends, so time-to-alarm includes it."""
    production = production_alarms["dbunit-lambda.audit_logging.duration_ms-warning"]
    level_ms = size.duration_drill_level_ms or production.threshold
    alarm = production.with_period(DRILL_PERIOD_S).drilled_on("FunctionName", DURATION_FUNCTION, level_ms)
    sleep_s = level_ms / 1000.0 + DURATION_MARGIN_S
    wait_s = sleep_s + 45.0
    mode = {"slow": False, "slow_done": False}
    with outcome_recorded(results, "lambda_duration", alarm, production):
        with drill_function(stack, DURATION_FUNCTION, DURATION_CODE, int(sleep_s) + 30) as client:

            def invoke(stop: threading.Event) -> None:
                if mode["slow"] and not mode["slow_done"]:
                    # One slow invocation, then none until recovery: a second would hold recovery for its length.
                    client.invoke(FunctionName=DURATION_FUNCTION, Payload=json.dumps({"sleep_s": sleep_s}).encode())
                    mode["slow_done"] = True
                elif mode["slow"]:
                    stop.wait(0.2)
                else:
                    client.invoke(FunctionName=DURATION_FUNCTION, Payload=b"{}")
                    stop.wait(0.2)

            loop = Loop(invoke, cap_s=wait_s * 2 + 60)
            drill = Drill(stack.aws, alarm, already_drill=True)
            loop.start()
            try:
                start = time.time()
                # No hold after the ALARM: the one slow datapoint decides its period whatever follows, and
                # holding would let the emulator go back to OK (its 10 s window) before the recovery is timed.
                times = drill.run(
                    lambda: mode.update(slow=True), lambda: mode.update(slow=False), timeout_s=wait_s, hold_s=0.0
                )
                end = time.time()
            finally:
                loop.end()
                drill.close()
            assert not loop.errors, loop.errors
            time.sleep(2.0)
            maxima = lambda_sums(stack, DURATION_FUNCTION, "Duration", "Maximum", start, end)
        assert_drill(times)
        # Each readback is one 10 s period's Maximum, stamped with the period's start: judged from that period on.
        series = sorted((t + DRILL_PERIOD_S / 2, v) for t, v in maxima.items())
        assert series, "the Lambda runtime published no Duration for the drill function"
        judged = evaluate(datapoints(series, alarm.rule, period_start(start, DRILL_PERIOD_S), end), alarm.rule)
        assert judged.fired, (maxima, start, end, [e.reason for e in judged.evaluations])
    note = "" if size.duration_drill_level_ms is None else f"; drill level {level_ms:g} ms, not the production level"
    record(results, "lambda_duration", times, alarm, production, note)
