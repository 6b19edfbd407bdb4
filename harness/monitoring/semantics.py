"""CloudWatch's alarm semantics, evaluated over the series a run recorded.

The AWS emulator's evaluator is cruder than CloudWatch (one statistic over every point of the last
Period x EvaluationPeriods, dimensions, DatapointsToAlarm and TreatMissingData ignored), so it cannot
answer "would the production alarm have fired?". This module does, from raw samples:

- Datapoints: one per Period, periods aligned to the epoch as CloudWatch aligns them, each the Period's
  statistic (Average, Maximum, Minimum, Sum, SampleCount, pNN) of the samples inside it; a Period
  without samples is a missing datapoint.
- Evaluation at the end of every Period over the last EvaluationPeriods (N) datapoints: ALARM when at
  least DatapointsToAlarm (M) of them breach.
- TreatMissingData: `breaching` and `notBreaching` fill missing datapoints with that outcome. `missing`
  and `ignore` leave them out: with at least M real datapoints, ALARM iff M breach; with fewer (but
  some), ALARM iff every real one breaches (CloudWatch fills as few as it must, so a lone breaching
  point alarms); with none, `missing` goes to INSUFFICIENT_DATA and `ignore` keeps the current state.
- Percentiles need 10 / (1 - p) samples per period (1,000 for p99.9, 100 for p90); below that,
  EvaluateLowSampleCountPercentile `ignore` keeps the current state, `evaluate` judges the point anyway.

CloudWatch also retrieves a longer range than N when points are missing; that refinement is not
modelled (stated in the report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

COMPARISONS = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
BASIC_STATISTICS = ("Average", "Maximum", "Minimum", "Sum", "SampleCount")
# High-resolution alarms may use 10 s or 30 s; standard ones any multiple of 60 s.
HIGH_RESOLUTION_PERIODS = (10, 30)
# CloudWatch caps EvaluationPeriods x Period at one day for periods of a minute or more.
MAX_EVALUATION_SPAN_S = 86_400


class MissingData(StrEnum):
    MISSING = "missing"
    NOT_BREACHING = "notBreaching"
    BREACHING = "breaching"
    IGNORE = "ignore"


class RuleError(ValueError):
    """An alarm rule CloudWatch would refuse; the message says which field and why."""


@dataclass(frozen=True)
class AlarmRule:
    statistic: str
    comparison: str
    threshold: float
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: MissingData = MissingData.MISSING
    # "evaluate" (CloudWatch's default) or "ignore"; only percentiles use it.
    low_sample_percentiles: str = "evaluate"

    def __post_init__(self) -> None:
        problem = rule_problem(self)
        if problem:
            raise RuleError(problem)

    @property
    def percentile(self) -> float | None:
        return percentile_of(self.statistic)

    def breaches(self, value: float) -> bool:
        return bool(COMPARISONS[self.comparison](value, self.threshold))

    def with_period(self, period_s: int) -> AlarmRule:
        return replace(self, period_s=period_s)


def percentile_of(statistic: str) -> float | None:
    if statistic[:1] in ("p", "P"):
        try:
            value = float(statistic[1:])
        except ValueError:
            return None
        return value if 0 < value < 100 else None
    return None


def rule_problem(rule: AlarmRule) -> str | None:
    if rule.statistic not in BASIC_STATISTICS and percentile_of(rule.statistic) is None:
        return f"statistic {rule.statistic!r}: use one of {', '.join(BASIC_STATISTICS)} or a percentile like p99"
    if rule.comparison not in COMPARISONS:
        return f"comparison {rule.comparison!r}: use one of {', '.join(COMPARISONS)}"
    if rule.period_s not in HIGH_RESOLUTION_PERIODS and (rule.period_s < 60 or rule.period_s % 60):
        return f"period {rule.period_s}s: CloudWatch takes 10, 30 or a multiple of 60 seconds"
    if rule.evaluation_periods < 1:
        return "evaluation_periods must be at least 1"
    if not 1 <= rule.datapoints_to_alarm <= rule.evaluation_periods:
        return (
            f"datapoints_to_alarm {rule.datapoints_to_alarm} must be between 1 and evaluation_periods "
            f"({rule.evaluation_periods})"
        )
    if rule.period_s >= 60 and rule.period_s * rule.evaluation_periods > MAX_EVALUATION_SPAN_S:
        return "period x evaluation_periods exceeds CloudWatch's one-day limit"
    if rule.low_sample_percentiles not in ("evaluate", "ignore"):
        return "low_sample_percentiles is evaluate or ignore"
    return None


def min_samples_for_percentile(p: float) -> int:
    """CloudWatch's minimum sample count for a percentile datapoint to be significant: 10 / (1 - p)."""
    return math.ceil(round(10 / (1 - p / 100), 6))


@dataclass(frozen=True)
class Datapoint:
    start: float
    value: float | None
    samples: int
    breaching: bool | None
    low_sample: bool = False

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Evaluation:
    at: float
    state: str
    window: tuple[Datapoint, ...]
    reason: str


@dataclass(frozen=True)
class Outcome:
    rule: AlarmRule
    evaluations: tuple[Evaluation, ...]

    @property
    def fired(self) -> bool:
        return any(e.state == ALARM for e in self.evaluations)

    @property
    def first_alarm(self) -> Evaluation | None:
        return next((e for e in self.evaluations if e.state == ALARM), None)

    @property
    def deciding(self) -> Evaluation | None:
        """The evaluation that explains the answer: the first ALARM, else the one closest to breaching."""
        if self.first_alarm is not None:
            return self.first_alarm
        scored = [e for e in self.evaluations if e.window]
        if not scored:
            return None
        return max(scored, key=lambda e: (sum(1 for d in e.window if d.breaching), e.at))

    @property
    def transitions(self) -> list[tuple[float, str, str]]:
        found = []
        state = INSUFFICIENT_DATA
        for evaluation in self.evaluations:
            if evaluation.state != state:
                found.append((evaluation.at, state, evaluation.state))
                state = evaluation.state
        return found


def _statistic(values: Sequence[float], statistic: str) -> float:
    p = percentile_of(statistic)
    if p is not None:
        ordered = sorted(values)
        # Nearest rank, as CloudWatch computes percentiles on raw samples.
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Sum":
        return float(sum(values))
    return float(len(values))


def period_start(t: float, period_s: int) -> float:
    return math.floor(t / period_s) * period_s


def datapoints(samples: Sequence[tuple[float, float]], rule: AlarmRule, start: float, end: float) -> list[Datapoint]:
    """One datapoint per period from the period holding `start` to the one holding `end`."""
    buckets: dict[float, list[float]] = {}
    for t, value in samples:
        if start <= t <= end:
            buckets.setdefault(period_start(t, rule.period_s), []).append(value)
    points = []
    first, last = period_start(start, rule.period_s), period_start(end, rule.period_s)
    steps = round((last - first) / rule.period_s)
    p = rule.percentile
    for i in range(steps + 1):
        at = first + i * rule.period_s
        values = buckets.get(at)
        if not values:
            points.append(Datapoint(at, None, 0, None))
            continue
        value = _statistic(values, rule.statistic)
        low = p is not None and len(values) < min_samples_for_percentile(p)
        points.append(Datapoint(at, value, len(values), rule.breaches(value), low))
    return points


def ratio_datapoints(
    intervals: Sequence[tuple[float, int, int]], rule: AlarmRule, start: float, end: float, scale: float = 100.0
) -> list[Datapoint]:
    """Datapoints of a ratio metric (metric math `100 * hits / total`, both Sum per period): a period with
    no trials is missing, as CloudWatch's expression returns no value for it."""
    hits: dict[float, int] = {}
    totals: dict[float, int] = {}
    for t, h, n in intervals:
        if start <= t <= end:
            at = period_start(t, rule.period_s)
            hits[at] = hits.get(at, 0) + h
            totals[at] = totals.get(at, 0) + n
    points = []
    first, last = period_start(start, rule.period_s), period_start(end, rule.period_s)
    for i in range(round((last - first) / rule.period_s) + 1):
        at = first + i * rule.period_s
        total = totals.get(at, 0)
        if not total:
            points.append(Datapoint(at, None, 0, None))
            continue
        value = scale * hits[at] / total
        points.append(Datapoint(at, value, total, rule.breaches(value)))
    return points


def _state(window: Sequence[Datapoint], rule: AlarmRule, current: str) -> tuple[str, str]:
    m = rule.datapoints_to_alarm
    mode = rule.treat_missing_data
    if window and window[-1].low_sample and rule.low_sample_percentiles == "ignore":
        return current, "latest datapoint has too few samples for the percentile; state kept"
    outcomes: list[bool] = []
    for point in window:
        if point.missing:
            if mode == MissingData.BREACHING:
                outcomes.append(True)
            elif mode == MissingData.NOT_BREACHING:
                outcomes.append(False)
        else:
            assert point.breaching is not None
            outcomes.append(point.breaching)
    breaching = sum(outcomes)
    if not outcomes:
        if mode == MissingData.IGNORE:
            return current, "no datapoints; treat missing data `ignore` keeps the state"
        return INSUFFICIENT_DATA, "no datapoints in the evaluation range"
    if len(outcomes) >= m:
        state = ALARM if breaching >= m else OK
        return state, f"{breaching} of {len(outcomes)} datapoints breaching (alarm at {m})"
    state = ALARM if breaching == len(outcomes) else OK
    return state, f"{breaching} of {len(outcomes)} real datapoints breaching, fewer than {m} present"


def evaluate(points: Sequence[Datapoint], rule: AlarmRule) -> Outcome:
    """The alarm's state after each period closes, starting from INSUFFICIENT_DATA."""
    state = INSUFFICIENT_DATA
    evaluations = []
    n = rule.evaluation_periods
    # Before the first period the metric had no data: those datapoints are missing, not absent.
    padded = (
        [Datapoint(points[0].start - (n - 1 - k) * rule.period_s, None, 0, None) for k in range(n - 1)]
        if points
        else []
    )
    padded.extend(points)
    for i in range(len(points)):
        window = tuple(padded[i : i + n])
        state, reason = _state(window, rule, state)
        evaluations.append(Evaluation(points[i].start + rule.period_s, state, window, reason))
    return Outcome(rule, tuple(evaluations))
