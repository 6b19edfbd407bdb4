"""Threshold files: read the defaults, validate them against the metric registry, then layer overrides.

A thresholds file (see fixtures/thresholds.yaml):

    schema_version: 1
    thresholds:
      - metric: rds.cpu_pct
        warning: mean < 70%
        critical: mean < 90%
        unit: "%"
        source: "Health Monitoring > rds_postgresql > thresholds"

Layers apply in order: defaults, override files, `--set` strings (harness.thresholds.overrides).
Everything is checked before any load runs, and every problem in a file is reported at once with its
file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config import shipped_unit
from harness.measure.metrics import DIMENSIONLESS, UnknownMetricError, metric_spec, suggest
from harness.paths import FIXTURES_DIR
from harness.thresholds.model import LEVELS, MISSING_DATA_TREATMENTS, AlarmSettings, Threshold, ThresholdSet
from harness.thresholds.overrides import apply_override_text, apply_sets
from harness.thresholds.problems import Problem, ThresholdConfigError
from harness.thresholds.validation import check_levels, parse_level
from harness.thresholds.yaml_positions import mapping, scalar_of, top_level, where

# The document's thresholds (and the harness's own levels), judged by every sign-off unless overridden.
DEFAULT_THRESHOLDS_FILE = FIXTURES_DIR / "thresholds.yaml"

_THRESHOLD_KEYS = ("id", "metric", "warning", "critical", "unit", "source", "ours", "alarm")
_ALARM_KEYS = ("period_s", "evaluation_periods", "datapoints_to_alarm", "treat_missing_data")
_REQUIRED_KEYS = ("metric", "unit", "source")


def _declared_unit(value: Any) -> str | None:
    """The unit a file declares; `none` (or an empty string) is the plain-number unit."""
    if value is None or value in ("", "none"):
        return DIMENSIONLESS
    return value if isinstance(value, str) else None


def _parse_alarm(node: yaml.Node, origin: str, owner: str, problems: list[Problem]) -> AlarmSettings | None:
    """The `alarm:` block: how the production CloudWatch alarm evaluates (period, M of N, missing data)."""
    pairs = mapping(node, origin, f"{owner} alarm", problems)
    if pairs is None:
        return None
    values: dict[str, object] = {}
    ok = True
    for key, key_node, value_node in pairs:
        scalar = scalar_of(value_node)
        if key not in _ALARM_KEYS:
            problems.append(
                Problem(
                    origin,
                    *where(key_node),
                    f"{owner}: unknown alarm key {key!r}{suggest(key, _ALARM_KEYS)}; an alarm has: "
                    f"{', '.join(_ALARM_KEYS)}",
                )
            )
            ok = False
        elif key == "treat_missing_data":
            if scalar.value not in MISSING_DATA_TREATMENTS:
                problems.append(
                    Problem(
                        origin,
                        scalar.line,
                        scalar.column,
                        f"{owner}: treat_missing_data {scalar.value!r}; use one of "
                        f"{', '.join(MISSING_DATA_TREATMENTS)}",
                    )
                )
                ok = False
            values[key] = scalar.value
        elif isinstance(scalar.value, bool) or not isinstance(scalar.value, int) or scalar.value < 1:
            problems.append(
                Problem(origin, scalar.line, scalar.column, f"{owner}: {key} must be a whole number of at least 1")
            )
            ok = False
        else:
            values[key] = scalar.value
    period = values.get("period_s")
    if isinstance(period, int) and period not in (10, 30) and period % 60:
        problems.append(
            Problem(origin, *where(node), f"{owner}: period_s {period}: CloudWatch takes 10, 30 or a multiple of 60")
        )
        ok = False
    n, m = values.get("evaluation_periods"), values.get("datapoints_to_alarm")
    if isinstance(n, int) and isinstance(m, int) and m > n:
        problems.append(
            Problem(
                origin,
                *where(node),
                f"{owner}: datapoints_to_alarm {m} exceeds evaluation_periods {n}; M of N needs M <= N",
            )
        )
        ok = False
    if not ok:
        return None
    return AlarmSettings(
        period_s=_whole(values.get("period_s")),
        evaluation_periods=_whole(n),
        datapoints_to_alarm=_whole(m),
        treat_missing_data=str(values["treat_missing_data"]) if "treat_missing_data" in values else None,
    )


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _parse_threshold(node: yaml.Node, origin: str, problems: list[Problem]) -> Threshold | None:
    pairs = mapping(node, origin, "each threshold", problems)
    if pairs is None:
        return None
    line, _ = where(node)
    fields: dict[str, yaml.Node] = {}
    for key, key_node, value_node in pairs:
        if key not in _THRESHOLD_KEYS:
            problems.append(
                Problem(
                    origin,
                    *where(key_node),
                    f"unknown key {key!r}{suggest(key, _THRESHOLD_KEYS)}; "
                    f"a threshold has: {', '.join(_THRESHOLD_KEYS)}",
                )
            )
        fields[key] = value_node
    missing = [k for k in _REQUIRED_KEYS if k not in fields]
    if missing:
        problems.append(Problem(origin, line, None, f"threshold is missing {', '.join(missing)}; add them"))
        return None
    metric_scalar = scalar_of(fields["metric"])
    metric = str(metric_scalar.value)
    try:
        spec = metric_spec(metric)
    except UnknownMetricError as exc:
        problems.append(Problem(origin, metric_scalar.line, metric_scalar.column + metric_scalar.text_offset, str(exc)))
        return None
    threshold_id = str(scalar_of(fields["id"]).value) if "id" in fields else metric
    ok = True
    unit_scalar = scalar_of(fields["unit"])
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
    source = scalar_of(fields["source"]).value
    if not isinstance(source, str) or not source.strip():
        problems.append(
            Problem(
                origin,
                *where(fields["source"]),
                f"{threshold_id}: source must name the seed document section (or say `ours`)",
            )
        )
        ok = False
    ours = scalar_of(fields["ours"]).value if "ours" in fields else False
    if not isinstance(ours, bool):
        problems.append(Problem(origin, *where(fields["ours"]), f"{threshold_id}: ours must be true or false"))
        ok = False
    levels = {
        name: parse_level(fields[name], origin, threshold_id, name, spec, problems) if name in fields else None
        for name in LEVELS
    }
    broken_levels = any(
        name in fields and levels[name] is None and scalar_of(fields[name]).value is not None for name in LEVELS
    )
    alarm = AlarmSettings()
    if "alarm" in fields:
        parsed = _parse_alarm(fields["alarm"], origin, threshold_id, problems)
        if parsed is None:
            return None
        alarm = parsed
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
        alarm=alarm,
    )
    contradiction = check_levels(threshold)
    if contradiction:
        problems.append(Problem(origin, line, None, contradiction))
        return None
    return threshold


# A level or source may cite a fact of the unit spec instead of repeating its number: `value < {unit:FACT}USD`.
_UNIT_FACT = re.compile(r"\{unit:([A-Za-z0-9_.]+)\}")


def cite_unit_facts(text: str, origin: str, facts: Mapping[str, object]) -> str:
    """`text` with each {unit:FACT} replaced by the fact's value; an unknown fact is refused with its line."""
    problems: list[Problem] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in facts:
            line = text.count("\n", 0, match.start()) + 1
            problems.append(
                Problem(origin, line, None, f"{{unit:{name}}}: no such fact in the unit spec (`harness spec show`)")
            )
            return match.group(0)
        fact = facts[name]
        return str(fact).lower() if isinstance(fact, bool) else str(fact)

    cited = _UNIT_FACT.sub(value, text)
    if problems:
        raise ThresholdConfigError(problems)
    return cited


def parse_thresholds(text: str, origin: str, unit_facts: Mapping[str, object] | None = None) -> ThresholdSet:
    """Parse and validate a thresholds file's text; `origin` names it in messages. {unit:FACT} takes the fact's
    value from `unit_facts` (default: fixtures/unit.yaml as shipped)."""
    problems: list[Problem] = []
    text = cite_unit_facts(text, origin, shipped_unit().facts if unit_facts is None else unit_facts)
    section = top_level(text, origin, "thresholds", problems)
    thresholds: list[Threshold] = []
    if section is not None and not isinstance(section, yaml.SequenceNode):
        problems.append(Problem(origin, *where(section), "thresholds must be a list of `- metric: ...` entries"))
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
                        *where(item),
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdConfigError(
            [Problem(str(path), None, None, f"cannot read the file ({exc.strerror}); check the path")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ThresholdConfigError(
            [Problem(str(path), None, None, f"not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8")]
        ) from None


def load_thresholds(
    path: Path,
    override_files: Sequence[Path] = (),
    sets: Sequence[str] = (),
    unit_facts: Mapping[str, object] | None = None,
) -> ThresholdSet:
    """Defaults from `path` (citing `unit_facts`, default fixtures/unit.yaml), then each override file, then
    `--set` strings; all validated."""
    thresholds = parse_thresholds(_read(path), str(path), unit_facts)
    for override in override_files:
        thresholds = apply_override_text(thresholds, _read(override), str(override))
    if sets:
        thresholds = apply_sets(thresholds, sets)
    return thresholds
