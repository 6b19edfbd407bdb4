"""The sign-off report's "would the production alarms have fired" section (the dashboards: dashboards.py).

Rows only; text.py and html.py lay them out. The verdicts come from harness.monitoring.verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from harness.monitoring.verdicts import AlarmVerdict

ALARM_HEADERS = ("alarm", "production rule", "would have fired", "first ALARM", "deciding datapoints", "emulator")
ALARMS_NOTE = (
    "Each alarm replayed over this run's samples with CloudWatch's semantics: one datapoint per period "
    "(aligned to the clock), M of the last N breaching, the alarm's missing-data treatment. Periods without "
    "samples (between scenarios) are missing datapoints. `!` marks a breaching datapoint. Drills use 10 s "
    "copies of these alarms; the table uses the production periods. 'emulator' is what ministack's cruder "
    "evaluator did in the same session (it ignores dimensions, M of N and missing data, and never evaluates "
    "metric math)."
)


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _emulator(v: AlarmVerdict) -> str:
    if v.emulator_fired is None:
        return "not recorded"
    said = "fired" if v.emulator_fired else "did not fire"
    return said if v.agrees is not False else f"{said} (DIFFERS)"


def alarm_rows(verdicts: Sequence[AlarmVerdict]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for v in verdicts:
        rule, cw = v.alarm.rule, v.alarm.cloudwatch
        watched = (
            f"{cw.namespace} 100 * {cw.ratio_of[0]} / {cw.ratio_of[1]} (Sum per period)"
            if cw.ratio_of
            else f"{cw.namespace} {cw.name} {rule.statistic}"
        )
        level = f"{v.alarm.threshold:g}"
        if v.alarm.threshold != rule.threshold:
            level += f" ({rule.threshold:g} % of {cw.scale_by})"
        rows.append(
            (
                v.alarm.name,
                f"{watched} {rule.comparison} {level}; {rule.datapoints_to_alarm} of {rule.evaluation_periods} x "
                f"{rule.period_s} s; missing: {rule.treat_missing_data}",
                v.answer,
                _when(v.first_alarm_at),
                v.reason,
                _emulator(v),
            )
        )
    return rows
