"""A validated threshold and the layered set of them, as loading and overrides produce and evaluation reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.measure.metrics import convert
from harness.thresholds.grammar import Condition

LEVELS = ("warning", "critical")
MISSING_DATA_TREATMENTS = ("missing", "notBreaching", "breaching", "ignore")


@dataclass(frozen=True)
class AlarmSettings:
    """How the production CloudWatch alarm for a threshold evaluates; None = the monitoring catalog's default
    for that metric (harness/monitoring/catalog.py says why each default is what it is)."""

    period_s: int | None = None
    evaluation_periods: int | None = None
    datapoints_to_alarm: int | None = None
    treat_missing_data: str | None = None


@dataclass(frozen=True)
class Threshold:
    id: str
    metric: str
    unit: str
    warning: Condition | None
    critical: Condition | None
    source: str
    # True for levels the harness sets itself where the seed document names a check but no number.
    ours: bool
    # "file:line" of the definition and of each override applied, for the report's provenance.
    origin: str
    alarm: AlarmSettings = AlarmSettings()

    @property
    def condition(self) -> Condition:
        """Either level: both test the same statistic in the same direction."""
        present = self.critical or self.warning
        assert present is not None, "validated thresholds have at least one level"
        return present

    def level(self, which: str) -> float | None:
        """A level converted into the metric's unit, or None when that level is not set."""
        condition = self.warning if which == "warning" else self.critical
        if condition is None:
            return None
        if condition.unit is None or condition.statistic.dimensionless:
            return condition.level
        return convert(condition.level, condition.unit, self.unit)


@dataclass(frozen=True)
class ThresholdSet:
    thresholds: tuple[Threshold, ...]
    # Every file that contributed, in layering order, for the report.
    sources: tuple[str, ...]

    def by_id(self) -> dict[str, Threshold]:
        return {t.id: t for t in self.thresholds}

    def alarm_levels(self, metrics: Iterable[str]) -> dict[str, list[float]]:
        """The warning and critical levels (those set) of each threshold on one of `metrics`."""
        wanted = set(metrics)
        return {
            t.metric: [lv for lv in (t.level("warning"), t.level("critical")) if lv is not None]
            for t in self.thresholds
            if t.metric in wanted
        }
