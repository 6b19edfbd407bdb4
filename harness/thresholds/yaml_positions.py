"""YAML read as nodes, so every problem can name its file, line and column (plain yaml.safe_load loses them).

Also the frame both kinds of threshold file share: `schema_version` plus one section (`thresholds:` in a
defaults file, `overrides:` in an override file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from harness.thresholds.problems import Problem, ThresholdConfigError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Scalar:
    value: Any
    line: int
    column: int
    # Offset from the node's column to the first character of the text (1 for a quoted scalar).
    text_offset: int


def compose(text: str, origin: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ThresholdConfigError(
            [Problem(origin, line, column, f"not valid YAML: {exc.problem}; fix the syntax at this position")]
        ) from None
    except RecursionError:
        # PyYAML's composer recurses once per level: a few thousand `[` exhaust the stack.
        raise ThresholdConfigError([Problem(origin, None, None, "nests too deeply to read; flatten it")]) from None
    except yaml.YAMLError as exc:
        # The reader's errors (a control character, bad encoding) carry no problem_mark: found by the hostile sweep.
        position = getattr(exc, "position", None)
        raise ThresholdConfigError(
            [Problem(origin, None, None, f"not valid YAML text: {exc}; remove the character at offset {position}")]
        ) from None


def scalar_of(node: yaml.Node) -> Scalar:
    constructor = yaml.constructor.SafeConstructor()
    value = constructor.construct_object(node, deep=True)
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    return Scalar(value, node.start_mark.line + 1, node.start_mark.column + 1, 1 if quoted else 0)


def where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def mapping(
    node: yaml.Node, origin: str, what: str, problems: list[Problem]
) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
    """(key, key node, value node) triples; the key node locates problems about the entry as a whole."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(origin, *where(node), f"{what} must be a mapping of `key: value` lines"))
        return None
    pairs = []
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(scalar_of(key_node).value)
        if key in seen:
            # YAML loaders keep the last of duplicate keys; a silently dropped level is worse than an error.
            problems.append(Problem(origin, *where(key_node), f"{key!r} appears twice; keep one"))
            continue
        seen.add(key)
        pairs.append((key, key_node, value_node))
    return pairs


def top_level(text: str, origin: str, section: str, problems: list[Problem]) -> yaml.Node | None:
    root = compose(text, origin)
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
    pairs = mapping(root, origin, "the file", problems)
    if pairs is None:
        return None
    found = {key: value for key, _, value in pairs}
    for key, node, _ in pairs:
        if key not in ("schema_version", section):
            problems.append(
                Problem(
                    origin,
                    *where(node),
                    f"unknown top-level key {key!r}; expected schema_version and {section}",
                )
            )
    version_node = found.get("schema_version")
    if version_node is None:
        problems.append(Problem(origin, 1, 1, f"missing `schema_version: {SCHEMA_VERSION}`; add it at the top"))
    elif scalar_of(version_node).value != SCHEMA_VERSION:
        problems.append(
            Problem(
                origin,
                *where(version_node),
                f"schema_version is {scalar_of(version_node).value!r}; this harness reads {SCHEMA_VERSION}",
            )
        )
    if section not in found:
        problems.append(Problem(origin, None, None, f"missing `{section}:`; nothing to load"))
        return None
    return found[section]
