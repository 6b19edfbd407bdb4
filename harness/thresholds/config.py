"""Threshold files: load, validate against the metric registry, and layer overrides.

A thresholds file (see fixtures/thresholds.yaml):

    schema_version: 1
    thresholds:
      - metric: rds.cpu_pct
        warning: mean < 70%
        critical: mean < 90%
        unit: "%"
        source: "Health Monitoring > rds_postgresql > thresholds"

An override file changes levels of existing thresholds, keyed by threshold id (the `id:` field, which
defaults to the metric name); `null` removes a level:

    schema_version: 1
    overrides:
      vector_search.latency_ms:
        warning: p95 < 80ms

`--set` strings do the same from a command line: `ID:warning=EXPR`, `ID:critical=EXPR`, or `ID=EXPR`
for a threshold with a single level. Layers apply in order: defaults, override files, `--set`.

Everything is checked before any load runs, and every problem in a file is reported at once with its
file, line and column, so one `harness thresholds check` shows all there is to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from harness.measure.metrics import (
    ALLOWED_STATS,
    DIMENSIONLESS,
    REGISTRY,
    MetricSpec,
    UnknownMetricError,
    convert,
    metric_spec,
    suggest,
    unit_family,
)
from harness.thresholds.grammar import Condition, ExpressionError, parse_expression

SCHEMA_VERSION = 1
LEVELS = ("warning", "critical")
_THRESHOLD_KEYS = ("id", "metric", "warning", "critical", "unit", "source", "ours")
_REQUIRED_KEYS = ("metric", "unit", "source")


@dataclass(frozen=True)
class Problem:
    origin: str
    line: int | None
    column: int | None
    message: str
    # The offending expression, shown under the message with a caret at `caret` (1-based).
    excerpt: str | None = None
    caret: int | None = None

    def __str__(self) -> str:
        where = self.origin
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.excerpt is not None and self.caret is not None:
            text += f"\n    {self.excerpt}\n    {' ' * (self.caret - 1)}^"
        return text


class ThresholdConfigError(ValueError):
    """One or more problems in threshold files; str() lists them all, one per paragraph."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


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


# ---- YAML with positions -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scalar:
    value: Any
    line: int
    column: int
    # Offset from the node's column to the first character of the text (1 for a quoted scalar).
    text_offset: int


def _compose(text: str, origin: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ThresholdConfigError(
            [Problem(origin, line, column, f"not valid YAML: {exc.problem}; fix the syntax at this position")]
        ) from None


def _scalar(node: yaml.Node) -> _Scalar:
    constructor = yaml.constructor.SafeConstructor()
    value = constructor.construct_object(node, deep=True)
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    return _Scalar(value, node.start_mark.line + 1, node.start_mark.column + 1, 1 if quoted else 0)


def _where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _mapping(
    node: yaml.Node, origin: str, what: str, problems: list[Problem]
) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
    """(key, key node, value node) triples; the key node locates problems about the entry as a whole."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(origin, *_where(node), f"{what} must be a mapping of `key: value` lines"))
        return None
    pairs = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(_scalar(key_node).value)
        if key in seen:
            # YAML loaders keep the last of duplicate keys; a silently dropped level is worse than an error.
            problems.append(Problem(origin, *_where(key_node), f"{key!r} appears twice; keep one"))
            continue
        seen.add(key)
        pairs.append((key, key_node, value_node))
    return pairs


def _top_level(text: str, origin: str, section: str, problems: list[Problem]) -> yaml.Node | None:
    root = _compose(text, origin)
    if root is None:
        problems.append(
            Problem(
                origin,
                None,
                None,
                f"file is empty; expected `schema_version: {SCHEMA_VERSION}` and `{section}:`",
            )
        )
        return None
    pairs = _mapping(root, origin, "the file", problems)
    if pairs is None:
        return None
    found = {key: value for key, _, value in pairs}
    for key, node, _ in pairs:
        if key not in ("schema_version", section):
            problems.append(
                Problem(
                    origin,
                    *_where(node),
                    f"unknown top-level key {key!r}; expected schema_version and {section}",
                )
            )
    version_node = found.get("schema_version")
    if version_node is None:
        problems.append(Problem(origin, 1, 1, f"missing `schema_version: {SCHEMA_VERSION}`; add it at the top"))
    elif _scalar(version_node).value != SCHEMA_VERSION:
        problems.append(
            Problem(
                origin,
                *_where(version_node),
                f"schema_version is {_scalar(version_node).value!r}; this harness reads {SCHEMA_VERSION}",
            )
        )
    if section not in found:
        problems.append(Problem(origin, None, None, f"missing `{section}:`; nothing to load"))
        return None
    return found[section]


# ---- expressions against metrics ----------------------------------------------------------------


def _check_condition(condition: Condition, spec: MetricSpec) -> tuple[int, str] | None:
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


def _check_levels(threshold: Threshold) -> str | None:
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


# ---- the defaults file ----------------------------------------------------------------------------


def _parse_level(
    node: yaml.Node, origin: str, owner: str, level_name: str, spec: MetricSpec, problems: list[Problem]
) -> Condition | None:
    """The condition in `node`, None when the node is null or broken (a problem is then recorded)."""
    scalar = _scalar(node)
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
        issue = _check_condition(condition, spec)
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


def _declared_unit(value: Any) -> str | None:
    """The unit a file declares; `none` (or an empty string) is the plain-number unit."""
    if value is None or value in ("", "none"):
        return DIMENSIONLESS
    return value if isinstance(value, str) else None


def _parse_threshold(node: yaml.Node, origin: str, problems: list[Problem]) -> Threshold | None:
    pairs = _mapping(node, origin, "each threshold", problems)
    if pairs is None:
        return None
    line, _ = _where(node)
    fields: dict[str, yaml.Node] = {}
    for key, key_node, value_node in pairs:
        if key not in _THRESHOLD_KEYS:
            problems.append(
                Problem(
                    origin,
                    *_where(key_node),
                    f"unknown key {key!r}{suggest(key, _THRESHOLD_KEYS)}; "
                    f"a threshold has: {', '.join(_THRESHOLD_KEYS)}",
                )
            )
        fields[key] = value_node
    missing = [k for k in _REQUIRED_KEYS if k not in fields]
    if missing:
        problems.append(Problem(origin, line, None, f"threshold is missing {', '.join(missing)}; add them"))
        return None
    metric_scalar = _scalar(fields["metric"])
    metric = str(metric_scalar.value)
    try:
        spec = metric_spec(metric)
    except UnknownMetricError as exc:
        problems.append(Problem(origin, metric_scalar.line, metric_scalar.column + metric_scalar.text_offset, str(exc)))
        return None
    threshold_id = str(_scalar(fields["id"]).value) if "id" in fields else metric
    ok = True
    unit_scalar = _scalar(fields["unit"])
    declared = _declared_unit(unit_scalar.value)
    if declared != spec.unit:
        shown = spec.unit or "none"
        problems.append(
            Problem(
                origin,
                unit_scalar.line,
                unit_scalar.column,
                f"{threshold_id}: unit {unit_scalar.value!r} disagrees with the registry, which "
                f'measures {metric} in {shown!r}; write `unit: "{shown}"`',
            )
        )
        ok = False
    source = _scalar(fields["source"]).value
    if not isinstance(source, str) or not source.strip():
        problems.append(
            Problem(
                origin,
                *_where(fields["source"]),
                f"{threshold_id}: source must name the seed document section (or say `ours`)",
            )
        )
        ok = False
    ours = _scalar(fields["ours"]).value if "ours" in fields else False
    if not isinstance(ours, bool):
        problems.append(Problem(origin, *_where(fields["ours"]), f"{threshold_id}: ours must be true or false"))
        ok = False
    levels = {
        name: _parse_level(fields[name], origin, threshold_id, name, spec, problems) if name in fields else None
        for name in LEVELS
    }
    broken_levels = any(
        name in fields and levels[name] is None and _scalar(fields[name]).value is not None for name in LEVELS
    )
    if not ok or broken_levels:
        return None
    threshold = Threshold(
        id=threshold_id,
        metric=metric,
        unit=spec.unit,
        warning=levels["warning"],
        critical=levels["critical"],
        source=str(source).strip(),
        ours=ours,
        origin=f"{origin}:{line}",
    )
    contradiction = _check_levels(threshold)
    if contradiction:
        problems.append(Problem(origin, line, None, contradiction))
        return None
    return threshold


def parse_thresholds(text: str, origin: str) -> ThresholdSet:
    """Parse and validate a thresholds file's text; `origin` names it in messages."""
    problems: list[Problem] = []
    section = _top_level(text, origin, "thresholds", problems)
    thresholds: list[Threshold] = []
    if section is not None and not isinstance(section, yaml.SequenceNode):
        problems.append(Problem(origin, *_where(section), "thresholds must be a list of `- metric: ...` entries"))
    elif section is not None:
        seen: dict[str, str] = {}
        for item in section.value:
            threshold = _parse_threshold(item, origin, problems)
            if threshold is None:
                continue
            if threshold.id in seen:
                problems.append(
                    Problem(
                        origin,
                        *_where(item),
                        f"a second threshold with id {threshold.id!r} (first at {seen[threshold.id]}); "
                        "give one of them a distinct `id:`",
                    )
                )
                continue
            seen[threshold.id] = threshold.origin
            thresholds.append(threshold)
    if problems:
        raise ThresholdConfigError(problems)
    return ThresholdSet(tuple(thresholds), (origin,))


# ---- overrides --------------------------------------------------------------------------------------


def _with_levels(base: Threshold, levels: dict[str, Condition | None], origin: str) -> Threshold:
    return replace(base, origin=f"{base.origin} + {origin}", **levels)


def _unknown_id(threshold_id: str, known: dict[str, Threshold]) -> str:
    return (
        f"no threshold with id {threshold_id!r}{suggest(threshold_id, list(known))}; overrides change the "
        "levels of thresholds the defaults define"
    )


def apply_override_text(base: ThresholdSet, text: str, origin: str) -> ThresholdSet:
    """Layer an override file's levels over `base`."""
    problems: list[Problem] = []
    section = _top_level(text, origin, "overrides", problems)
    known = base.by_id()
    updated = dict(known)
    pairs = _mapping(section, origin, "overrides", problems) if section is not None else None
    for threshold_id, key_node, node in pairs or []:
        if threshold_id not in known:
            problems.append(Problem(origin, *_where(key_node), _unknown_id(threshold_id, known)))
            continue
        fields = _mapping(node, origin, f"override {threshold_id}", problems)
        if fields is None:
            continue
        levels: dict[str, Condition | None] = {}
        for key, _, value_node in fields:
            if key not in LEVELS:
                problems.append(
                    Problem(
                        origin,
                        *_where(value_node),
                        f"override {threshold_id}: {key!r} cannot be overridden; an override sets "
                        "warning and/or critical (null removes a level)",
                    )
                )
                continue
            before = len(problems)
            condition = _parse_level(
                value_node, origin, threshold_id, key, REGISTRY[known[threshold_id].metric], problems
            )
            if len(problems) == before:
                levels[key] = condition
        line, _ = _where(key_node)
        candidate = _with_levels(known[threshold_id], levels, f"{origin}:{line}")
        contradiction = _check_levels(candidate)
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
                issue = _check_condition(condition, REGISTRY[threshold.metric])
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
        contradiction = _check_levels(candidate)
        if contradiction:
            problems.append(Problem(origin, None, None, contradiction))
            continue
        current[threshold_id] = candidate
    if problems:
        raise ThresholdConfigError(problems)
    return ThresholdSet(tuple(current[t.id] for t in base.thresholds), (*base.sources, *(f"--set {s}" for s in sets)))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ThresholdConfigError(
            [Problem(str(path), None, None, f"cannot read the file ({exc.strerror}); check the path")]
        ) from None


def load_thresholds(path: Path, override_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> ThresholdSet:
    """Defaults from `path`, then each override file, then `--set` strings; all validated."""
    thresholds = parse_thresholds(_read(path), str(path))
    for override in override_files:
        thresholds = apply_override_text(thresholds, _read(override), str(override))
    if sets:
        thresholds = apply_sets(thresholds, sets)
    return thresholds
