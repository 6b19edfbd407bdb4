"""Judge a run's measurements against thresholds: PASS, WARN, FAIL, or ERROR when it cannot be judged.

A threshold whose metric no scenario recorded is an ERROR, never a pass: a misspelt metric in a
scenario, or a scenario that did not run, must not look like a healthy build. The one exception is a metric
a scenario declared NOT EMULATED on this backend, with its reason (results.json's `not_emulated`): its
thresholds are NOT EMULATED, which neither breaks the run nor counts as a pass; the verdict line says how
many there were. A metric declared so but measured anyway is judged on its measurement.

Exit codes (the process exit status of `harness signoff` and `harness report render`):

    0  ExitCode.PASS     every threshold passed
    3  ExitCode.WARN     at least one warning level breached, no critical one
    4  ExitCode.FAIL     at least one critical level breached
    5  ExitCode.BROKEN   the run itself broke: a threshold could not be judged (metric missing, no samples),
                         or the thresholds or results could not be read

1 and 2 are left alone by a verdict on purpose: Python exits 1 on an uncaught exception and argparse exits 2
on a usage error, and neither may be mistaken for "warnings only" or "critical breach"; the commands that
are not verdicts use them as ExitCode.FAILED and ExitCode.BAD_INPUT. The codes rise with severity, so
`rc <= 3` reads "no critical breach, nothing broken".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from harness.measure.metrics import REGISTRY
from harness.measure.results import MeasurementError, RunResults
from harness.thresholds.model import Threshold, ThresholdSet


class ExitCode(IntEnum):
    """Every exit code the harness's commands end with (the table above). A verdict's (PASS, WARN, FAIL,
    BROKEN) are what CI gates on; a command that is not a verdict ends OK, FAILED when it could not do its
    work, BAD_INPUT when it refused its arguments or files. The values never change: scripts test them."""

    PASS = 0
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    WARN = 3
    FAIL = 4
    BROKEN = 5
    INTERRUPTED = 130


EXIT_CODE_MEANINGS: dict[int, str] = {
    ExitCode.PASS: "all thresholds passed",
    ExitCode.WARN: "warnings only: a warning level was breached, no critical one",
    ExitCode.FAIL: "a critical level was breached",
    ExitCode.BROKEN: "the run broke: a threshold could not be judged, or input could not be read",
}


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    ERROR = "ERROR"
    NOT_EMULATED = "NOT EMULATED"


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    status: Status
    # In the metric's unit; None when the status is ERROR.
    measured: float | None
    # The level the status is about: the first one to fire on a PASS (headroom), else the breached one.
    level: float | None
    level_name: str | None
    # Positive: headroom left before the level fires. Negative: how far past the level the run went.
    margin: float | None
    sample_size: int | None
    message: str
    # 95 % interval of the measured figure (percentiles and rates), and whether it settles the status:
    # False when a level lies inside it, so a re-run could land on the other side.
    interval: tuple[float, float] | None = None
    conclusive: bool | None = None

    @property
    def margin_pct(self) -> float | None:
        if self.margin is None or not self.level:
            return None
        return 100.0 * self.margin / abs(self.level)


def _margin(threshold: Threshold, measured: float, level: float) -> float:
    match threshold.condition.comparator:
        case "<" | "<=":
            return level - measured
        case ">" | ">=":
            return measured - level
        case _:
            # 0.0 - x, not -x: a met equality has margin 0, not -0.
            return 0.0 - abs(measured - level)


def _describe(threshold: Threshold, status: Status, measured: float, level_name: str, level: float) -> str:
    unit = f" {threshold.unit}" if threshold.unit else ""
    stat = threshold.condition.statistic
    condition = threshold.warning if level_name == "warning" else threshold.critical
    if status is Status.PASS:
        return f"{stat} = {measured:.6g}{unit} meets `{condition}`"
    return f"{stat} = {measured:.6g}{unit} breaches {level_name} `{condition}` (level {level:.6g}{unit})"


def _not_judged(threshold: Threshold, message: str) -> ThresholdResult:
    return ThresholdResult(threshold, Status.ERROR, None, None, None, None, None, message)


def evaluate_threshold(threshold: Threshold, results: RunResults) -> ThresholdResult:
    data = results.get(threshold.metric)
    if data is None and threshold.metric in results.not_emulated:
        reason = results.not_emulated[threshold.metric]
        return ThresholdResult(threshold, Status.NOT_EMULATED, None, None, None, None, None, reason)
    if data is None:
        return _not_judged(
            threshold,
            f"{threshold.metric} was never measured: no scenario recorded it in {results.path}; run the "
            "scenario that records it, or check the metric name the scenario uses",
        )
    expected_kind = REGISTRY[threshold.metric].kind
    if data.kind != expected_kind or data.unit != threshold.unit:
        return _not_judged(
            threshold,
            f"{threshold.metric} is stored as {data.kind} in {data.unit!r} but the registry says "
            f"{expected_kind} in {threshold.unit!r}; the results file predates a registry change, "
            "re-run the scenarios",
        )
    try:
        figure = data.statistic(threshold.condition.statistic)
    except MeasurementError as exc:
        return _not_judged(threshold, str(exc))
    warning, critical = threshold.warning, threshold.critical
    warning_level, critical_level = threshold.level("warning"), threshold.level("critical")
    if critical and critical_level is not None and not critical.holds(figure.value, critical_level):
        status, level_name, level = Status.FAIL, "critical", critical_level
    elif warning and warning_level is not None and not warning.holds(figure.value, warning_level):
        status, level_name, level = Status.WARN, "warning", warning_level
    elif warning_level is not None:
        status, level_name, level = Status.PASS, "warning", warning_level
    else:
        assert critical_level is not None, "validated thresholds have at least one level"
        status, level_name, level = Status.PASS, "critical", critical_level
    message = _describe(threshold, status, figure.value, level_name, level)
    conclusive = None
    if figure.interval is not None:
        low, high = figure.interval
        straddled = [
            (name, value)
            for name, value in (("warning", warning_level), ("critical", critical_level))
            if value is not None and low <= value <= high and low < high
        ]
        conclusive = not straddled
        if straddled:
            name, value = straddled[0]
            unit = f" {threshold.unit}" if threshold.unit else ""
            message += (
                f"; not conclusive: the 95% interval [{low:.6g}, {high:.6g}]{unit} from {figure.sample_size:,} "
                f"samples straddles the {name} level {value:.6g}{unit}"
            )
    return ThresholdResult(
        threshold,
        status,
        figure.value,
        level,
        level_name,
        _margin(threshold, figure.value, level),
        figure.sample_size,
        message,
        figure.interval,
        conclusive,
    )


def evaluate(thresholds: ThresholdSet, results: RunResults) -> list[ThresholdResult]:
    return [evaluate_threshold(t, results) for t in thresholds.thresholds]


def exit_code(results: Sequence[ThresholdResult]) -> ExitCode:
    """The worst outcome wins; a broken run outranks a breach because its verdict cannot be trusted.
    NOT EMULATED thresholds take no part: the verdict is about the ones judged (not_emulated_note says
    how many were left out)."""
    statuses = {r.status for r in results}
    if Status.ERROR in statuses:
        return ExitCode.BROKEN
    if Status.FAIL in statuses:
        return ExitCode.FAIL
    if Status.WARN in statuses:
        return ExitCode.WARN
    return ExitCode.PASS


def not_emulated_note(results: Sequence[ThresholdResult]) -> str:
    """What the verdict line adds when thresholds were NOT EMULATED ("" when none were)."""
    count = sum(r.status is Status.NOT_EMULATED for r in results)
    if not count:
        return ""
    return f"{count} of {len(results)} thresholds NOT EMULATED on this backend (neither judged nor passed)"


def verdict(results: Sequence[ThresholdResult]) -> Status:
    return {ExitCode.BROKEN: Status.ERROR, ExitCode.FAIL: Status.FAIL, ExitCode.WARN: Status.WARN}.get(
        exit_code(results), Status.PASS
    )
