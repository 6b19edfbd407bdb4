"""Whether an expression suits its metric (statistic, unit) and whether a threshold's two levels agree.

Loading and overrides both build levels through `parse_level`, so a level means the same whichever layer set it.
"""

from __future__ import annotations

import yaml

from harness.measure.metrics import ALLOWED_STATS, DIMENSIONLESS, MetricSpec, unit_family
from harness.thresholds.grammar import Condition, ExpressionError, parse_expression
from harness.thresholds.model import Threshold
from harness.thresholds.problems import Problem
from harness.thresholds.yaml_positions import scalar_of


def check_condition(condition: Condition, spec: MetricSpec) -> tuple[int, str] | None:
    """(column, message) if the condition does not suit the metric, else None."""
    allowed = ALLOWED_STATS[spec.kind]
    if not allowed:
        return condition.statistic_column, (
            f"{spec.name} is a {spec.kind} metric, drawn in the report but never judged; "
            "put the threshold on a scalar metric instead"
        )
    if condition.statistic.family not in allowed:
        shown = ", ".join("p95/p99/..." if s == "p" else s for s in allowed)
        return condition.statistic_column, (
            f"statistic {str(condition.statistic)!r} does not apply to {spec.name} ({spec.kind}); use one of: {shown}"
        )
    if condition.unit is None:
        return None
    if condition.statistic.dimensionless:
        return condition.unit_column or 1, (f"count is a plain number; drop the unit {condition.unit!r}")
    if spec.unit == DIMENSIONLESS or unit_family(condition.unit) != unit_family(spec.unit):
        expected = f"a {unit_family(spec.unit)} unit like {spec.unit!r}" if spec.unit else "no unit"
        return condition.unit_column or 1, (
            f"unit {condition.unit!r} does not fit {spec.name}, which is measured in "
            f"{spec.unit or 'plain numbers'}; write {expected}"
        )
    return None


def _upper_bound(condition: Condition) -> bool:
    return condition.comparator in ("<", "<=")


def check_levels(threshold: Threshold) -> str | None:
    """A message if the two levels contradict each other, else None."""
    warning, critical = threshold.warning, threshold.critical
    if warning is None and critical is None:
        return f"threshold {threshold.id} has neither a warning nor a critical level; give it at least one"
    if warning is None or critical is None:
        return None
    if "==" in (warning.comparator, critical.comparator):
        return f"threshold {threshold.id}: `==` can only express one level; keep either warning or critical"
    if warning.statistic != critical.statistic or _upper_bound(warning) != _upper_bound(critical):
        return (
            f"threshold {threshold.id}: warning `{warning}` and critical `{critical}` must test the same "
            "statistic in the same direction (both < / <=, or both > / >=); only the level may differ"
        )
    warn_level = threshold.level("warning")
    crit_level = threshold.level("critical")
    assert warn_level is not None and crit_level is not None
    upper_bound = _upper_bound(warning)
    if (upper_bound and warn_level > crit_level) or (not upper_bound and warn_level < crit_level):
        side = "at or below" if upper_bound else "at or above"
        return (
            f"threshold {threshold.id}: warning level {warning.level:g}{warning.unit or ''} is on the wrong "
            f"side of critical {critical.level:g}{critical.unit or ''}; for `{warning.comparator}` the "
            f"warning must be {side} the critical level so it fires first"
        )
    return None


def parse_level(
    node: yaml.Node, origin: str, owner: str, level_name: str, spec: MetricSpec, problems: list[Problem]
) -> Condition | None:
    """The condition in `node`, None when the node is null or broken (a problem is then recorded)."""
    scalar = scalar_of(node)
    if scalar.value is None:
        return None
    if not isinstance(scalar.value, str):
        problems.append(
            Problem(
                origin,
                scalar.line,
                scalar.column,
                f"{owner} {level_name}: expected an expression like `p95 < 50ms` or `mean < 70%`, "
                f"got the bare value {scalar.value!r}; say which statistic it limits",
            )
        )
        return None
    single_line = node.start_mark.line == node.end_mark.line and getattr(node, "style", None) not in (
        "|",
        ">",
    )
    try:
        condition = parse_expression(scalar.value)
        issue = check_condition(condition, spec)
    except ExpressionError as exc:
        issue = (exc.column, exc.message)
        condition = None
    if issue is None:
        return condition
    column, message = issue
    file_column = scalar.column + scalar.text_offset + column - 1 if single_line else None
    problems.append(
        Problem(
            origin,
            scalar.line,
            file_column,
            f"{owner} {level_name}: {message}",
            excerpt=scalar.value,
            caret=column,
        )
    )
    return None
