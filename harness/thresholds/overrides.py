"""Layer overrides over loaded thresholds: override files keyed by threshold id, and `--set` strings.

An override file changes levels of existing thresholds, keyed by threshold id (the `id:` field, which
defaults to the metric name); `null` removes a level:

    schema_version: 1
    overrides:
      vector_search.latency_ms:
        warning: p95 < 80ms

`--set` strings do the same from a command line: `ID:warning=EXPR`, `ID:critical=EXPR`, or `ID=EXPR`
for a threshold with a single level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from harness.measure.metrics import REGISTRY, suggest
from harness.thresholds.grammar import Condition, ExpressionError, parse_expression
from harness.thresholds.model import LEVELS, Threshold, ThresholdSet
from harness.thresholds.problems import Problem, ThresholdConfigError
from harness.thresholds.validation import check_condition, check_levels, parse_level
from harness.thresholds.yaml_positions import mapping, top_level, where


def _with_levels(base: Threshold, levels: dict[str, Condition | None], origin: str) -> Threshold:
    """`base` with the levels named in `levels` replaced (a None value removes that level)."""
    return replace(
        base,
        warning=levels.get("warning", base.warning),
        critical=levels.get("critical", base.critical),
        origin=f"{base.origin} + {origin}",
    )


def _unknown_id(threshold_id: str, known: dict[str, Threshold]) -> str:
    return (
        f"no threshold with id {threshold_id!r}{suggest(threshold_id, list(known))}; overrides change the "
        "levels of thresholds the defaults define"
    )


def apply_override_text(base: ThresholdSet, text: str, origin: str) -> ThresholdSet:
    """Layer an override file's levels over `base`."""
    problems: list[Problem] = []
    section = top_level(text, origin, "overrides", problems)
    known = base.by_id()
    updated = dict(known)
    pairs = mapping(section, origin, "overrides", problems) if section is not None else None
    for threshold_id, key_node, node in pairs or []:
        if threshold_id not in known:
            problems.append(Problem(origin, *where(key_node), _unknown_id(threshold_id, known)))
            continue
        fields = mapping(node, origin, f"override {threshold_id}", problems)
        if fields is None:
            continue
        levels: dict[str, Condition | None] = {}
        for key, _, value_node in fields:
            if key not in LEVELS:
                problems.append(
                    Problem(
                        origin,
                        *where(value_node),
                        f"override {threshold_id}: {key!r} cannot be overridden; an override sets "
                        "warning and/or critical (null removes a level)",
                    )
                )
                continue
            before = len(problems)
            condition = parse_level(
                value_node, origin, threshold_id, key, REGISTRY[known[threshold_id].metric], problems
            )
            if len(problems) == before:
                levels[key] = condition
        line, _ = where(key_node)
        candidate = _with_levels(known[threshold_id], levels, f"{origin}:{line}")
        contradiction = check_levels(candidate)
        if contradiction:
            problems.append(Problem(origin, line, None, contradiction))
            continue
        updated[threshold_id] = candidate
    if problems:
        raise ThresholdConfigError(problems)
    return ThresholdSet(tuple(updated[t.id] for t in base.thresholds), (*base.sources, origin))


_NO_LEVEL = ("none", "null", "off")


def apply_sets(base: ThresholdSet, sets: Sequence[str]) -> ThresholdSet:
    """Layer `ID:warning=EXPR`, `ID:critical=EXPR` or `ID=EXPR` strings over `base`."""
    problems: list[Problem] = []
    current = base.by_id()
    for raw in sets:
        origin = f"--set {raw!r}"
        target, sep, expression = raw.partition("=")
        if not sep:
            problems.append(
                Problem(
                    origin,
                    None,
                    None,
                    "expected ID:warning=EXPR, ID:critical=EXPR or ID=EXPR, e.g. "
                    "'vector_search.latency_ms:warning=p95 < 80ms'",
                )
            )
            continue
        threshold_id, colon, level_name = target.strip().partition(":")
        if threshold_id not in current:
            problems.append(Problem(origin, None, None, _unknown_id(threshold_id, current)))
            continue
        threshold = current[threshold_id]
        if not colon:
            present = [name for name in LEVELS if getattr(threshold, name) is not None]
            if len(present) != 1:
                problems.append(
                    Problem(
                        origin,
                        None,
                        None,
                        f"{threshold_id} has both levels; say which one: "
                        f"{threshold_id}:warning=EXPR or {threshold_id}:critical=EXPR",
                    )
                )
                continue
            level_name = present[0]
        if level_name not in LEVELS:
            problems.append(
                Problem(
                    origin,
                    None,
                    None,
                    f"level {level_name!r}{suggest(level_name, LEVELS)} is not warning or critical",
                )
            )
            continue
        condition: Condition | None = None
        if expression.strip().lower() not in _NO_LEVEL:
            try:
                condition = parse_expression(expression)
                issue = check_condition(condition, REGISTRY[threshold.metric])
            except ExpressionError as exc:
                issue = (exc.column, exc.message)
            if issue is not None:
                column, message = issue
                problems.append(
                    Problem(
                        origin,
                        None,
                        None,
                        f"{threshold_id} {level_name}: {message}",
                        excerpt=raw,
                        caret=len(target) + 1 + column,
                    )
                )
                continue
        candidate = _with_levels(threshold, {level_name: condition}, origin)
        contradiction = check_levels(candidate)
        if contradiction:
            problems.append(Problem(origin, None, None, contradiction))
            continue
        current[threshold_id] = candidate
    if problems:
        raise ThresholdConfigError(problems)
    return ThresholdSet(tuple(current[t.id] for t in base.thresholds), (*base.sources, *(f"--set {s}" for s in sets)))
