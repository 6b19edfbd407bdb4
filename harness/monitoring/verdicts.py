"""Would the production alarms have fired during this run? Alarm by alarm, from the run's own series.

The local sign-off judges a threshold over the whole run (the mean CPU of every sample, say), but the
production alarm judges one-minute datapoints, M of N at a time: a run can pass the first and still
page at 3 a.m. This module replays each alarm over the recorded series with CloudWatch's semantics
(harness.monitoring.semantics) and, when the scenarios recorded the emulator's alarm history, says
where the emulator's cruder evaluator disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.config import shipped_unit
from harness.measure.metrics import MetricKind
from harness.measure.results import MetricData, RunResults
from harness.monitoring.alarms import AlarmDefinition, alarm_definitions
from harness.monitoring.semantics import Datapoint, Outcome, datapoints, evaluate, ratio_datapoints
from harness.thresholds import ThresholdSet

FIRED = "FIRED"
QUIET = "NO"
NOT_EVALUATED = "NOT EVALUATED"
NOT_MEASURED = "NOT MEASURED"


@dataclass(frozen=True)
class AlarmVerdict:
    alarm: AlarmDefinition
    answer: str
    # Unix time of the first ALARM evaluation, when the series has timestamps.
    first_alarm_at: float | None
    # The datapoints that decided: the window of the first ALARM, else the one closest to breaching.
    deciding: tuple[Datapoint, ...]
    reason: str
    # True / False when the emulator's history was recorded, None when it was not.
    emulator_fired: bool | None

    @property
    def agrees(self) -> bool | None:
        if self.emulator_fired is None or self.answer not in (FIRED, QUIET):
            return None
        return self.emulator_fired == (self.answer == FIRED)

    def as_json(self) -> dict[str, Any]:
        rule = self.alarm.rule
        return {
            "alarm": self.alarm.name,
            "metric": self.alarm.metric,
            "cloudwatch": f"{self.alarm.cloudwatch.namespace} {self.alarm.cloudwatch.name}",
            "rule": f"{rule.statistic} {rule.comparison} {rule.threshold:g}, {rule.datapoints_to_alarm} of "
            f"{rule.evaluation_periods} x {rule.period_s} s, missing data {rule.treat_missing_data}",
            "answer": self.answer,
            "first_alarm_at": self.first_alarm_at,
            "reason": self.reason,
            "datapoints": [
                {"start": d.start, "value": d.value, "samples": d.samples, "breaching": d.breaching}
                for d in self.deciding
            ],
            "emulator_fired": self.emulator_fired,
            "agrees_with_emulator": self.agrees,
        }


def _shown(points: tuple[Datapoint, ...]) -> str:
    return ", ".join("-" if d.value is None else f"{d.value:.1f}{'!' if d.breaching else ''}" for d in points)


def _from_outcome(alarm: AlarmDefinition, outcome: Outcome, emulator: bool | None) -> AlarmVerdict:
    deciding = outcome.deciding
    window = deciding.window if deciding is not None else ()
    if outcome.first_alarm is not None:
        return AlarmVerdict(
            alarm,
            FIRED,
            outcome.first_alarm.at,
            window,
            f"{outcome.first_alarm.reason}: datapoints {_shown(window)}",
            emulator,
        )
    reason = f"closest window: {deciding.reason}: datapoints {_shown(window)}" if deciding else "no datapoints"
    return AlarmVerdict(alarm, QUIET, None, window, reason, emulator)


def _verdict(alarm: AlarmDefinition, data: MetricData | None, emulator: bool | None) -> AlarmVerdict:
    rule = alarm.rule
    if alarm.cloudwatch.local_series == "projection":
        return AlarmVerdict(
            alarm,
            NOT_EVALUATED,
            None,
            (),
            "AWS/Billing EstimatedCharges is month-to-date spend; the cost projection judges it",
            emulator,
        )
    if data is None:
        return AlarmVerdict(alarm, NOT_MEASURED, None, (), f"the run recorded no {alarm.metric}", emulator)
    if data.kind == MetricKind.GAUGE:
        samples = data.samples()
        if not samples:
            return AlarmVerdict(alarm, NOT_MEASURED, None, (), f"{alarm.metric} has no samples", emulator)
        points = datapoints(samples, rule, samples[0][0], samples[-1][0])
        return _from_outcome(alarm, evaluate(points, rule), emulator)
    if data.kind == MetricKind.RATE:
        intervals = data.intervals()
        if not intervals:
            return AlarmVerdict(alarm, NOT_MEASURED, None, (), f"{alarm.metric} has no intervals", emulator)
        points = ratio_datapoints(intervals, rule, intervals[0][0], intervals[-1][0], data.fraction_in_unit(1.0))
        return _from_outcome(alarm, evaluate(points, rule), emulator)
    # Histograms and counters keep no timestamps. With 1 of 1 datapoints, a Maximum (or a Sum above 0)
    # fires iff the run's maximum (or total) breaches: some one-minute period held it.
    if rule.datapoints_to_alarm != 1 or rule.statistic not in ("Maximum", "Sum"):
        return AlarmVerdict(
            alarm, NOT_EVALUATED, None, (), f"{alarm.metric} keeps no timestamps to form datapoints from", emulator
        )
    if data.kind == MetricKind.HISTOGRAM:
        histogram = data.histogram()
        if histogram.get_total_count() == 0:
            return AlarmVerdict(alarm, NOT_MEASURED, None, (), f"{alarm.metric} has no samples", emulator)
        value = histogram.get_max_value() / data.hdr_scale
    else:
        value = float(data.count()[0])
    fired = rule.breaches(value)
    what = "maximum" if data.kind == MetricKind.HISTOGRAM else "total"
    point = Datapoint(0.0, value, 1, fired)
    return AlarmVerdict(
        alarm,
        FIRED if fired else QUIET,
        None,
        (point,),
        f"the run's {what} {value:g} {'breaches' if fired else 'stays within'} {rule.threshold:g} "
        "(1 of 1: some period held it; the time is not recorded)",
        emulator,
    )


def production_alarm_verdicts(
    thresholds: ThresholdSet, results: RunResults, db_instance_class: str | None = None
) -> list[AlarmVerdict]:
    instance_class = db_instance_class or str(
        (results.run.get("sizing") or {}).get("db_instance_class")
        or (results.run.get("postgres") or {}).get("instance_class")
        or shipped_unit().db_instance_class
    )
    emulator = results.run.get("cloudwatch_emulator") or {}
    first_alarm = emulator.get("first_alarm") or {}
    verdicts = []
    for alarm in alarm_definitions(thresholds, db_instance_class=instance_class):
        fired = None if alarm.name not in first_alarm else first_alarm[alarm.name] is not None
        verdicts.append(_verdict(alarm, results.get(alarm.metric), fired))
    return verdicts
