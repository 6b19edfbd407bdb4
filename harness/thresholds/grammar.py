"""The threshold expression grammar, in the spirit of k6's `p(95)<500`:

    expression := statistic comparator number [unit]
    statistic  := "p" NUMBER | "p(" NUMBER ")" | min | max | mean | count | rate | value
    comparator := "<" | "<=" | ">" | ">=" | "=="
    number     := ["-"] DIGITS ["_" DIGITS]... ["." DIGITS]
    unit       := one of harness.measure.metrics.UNITS (ms, s, %, MB, GiB, h, USD...), or none

An expression states what must hold for the run to pass: `p95 < 50ms` passes when the 95th percentile
is under 50 ms. A bare number is in the metric's own unit. Spaces between tokens are optional.

The parser knows nothing about metrics: whether a statistic suits a metric, and whether a unit is of
the metric's family, is checked where the metric is known (harness.thresholds.validation). Errors carry a
1-based column into the expression so the loader can point at the exact character in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.measure.metrics import STAT_NAMES, UNITS, Statistic, suggest

COMPARATORS = ("<", "<=", ">", ">=", "==")
_EXPECTED_STAT = "a statistic (p95, p99.9, p(95), min, max, mean, count, rate, value)"
_EXPECTED_COMPARATOR = "a comparator (<, <=, >, >=, ==)"
_SHAPE = "an expression is `statistic comparator number[unit]`, e.g. `p95 < 50ms`"

# Names other tools use, mapped to ours, so the error can say exactly what to write.
_ALIASES = {
    "avg": "mean",
    "average": "mean",
    "median": "p50",
    "last": "value",
    "minimum": "min",
    "maximum": "max",
}

_WORD = re.compile(r"[A-Za-z_]+")
_NUMBER = re.compile(r"-?\d+(?:_\d+)*(?:\.\d+)?")
_UNIT = re.compile(r"[A-Za-zµ%]+")
_COMPARATOR = re.compile(r"[<>=!]+")


class ExpressionError(ValueError):
    """A malformed expression; `column` is 1-based into the expression text."""

    def __init__(self, text: str, column: int, message: str) -> None:
        self.text = text
        self.column = column
        self.message = message
        super().__init__(f"column {column}: {message}")


@dataclass(frozen=True)
class Condition:
    """One parsed expression. `level` is in `unit` as written; None unit means the metric's own."""

    text: str
    statistic: Statistic
    comparator: str
    level: float
    unit: str | None
    statistic_column: int
    unit_column: int | None

    def holds(self, measured: float, level: float) -> bool:
        """Whether a measured figure satisfies this condition against a level in the same unit."""
        match self.comparator:
            case "<":
                return measured < level
            case "<=":
                return measured <= level
            case ">":
                return measured > level
            case ">=":
                return measured >= level
            case _:
                return measured == level

    def __str__(self) -> str:
        return self.text


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if not found:
            return None
        self.pos = found.end()
        return found.group()

    @property
    def column(self) -> int:
        return self.pos + 1

    def rest(self) -> str:
        return self.text[self.pos :]

    def found(self) -> str:
        """What stands at the cursor, for 'found ...' in messages."""
        rest = self.rest().split()
        return repr(rest[0]) if rest else "the end of the expression"

    def error(self, message: str, column: int | None = None) -> ExpressionError:
        return ExpressionError(self.text, self.column if column is None else column, message)


def _parse_percentile(scanner: _Scanner, start: int) -> Statistic:
    parenthesised = scanner.text.startswith("(", scanner.pos)
    if parenthesised:
        scanner.pos += 1
    number_column = scanner.column
    digits = scanner.match(_NUMBER)
    if digits is None or digits.startswith("-"):
        raise scanner.error(f"expected a percentile after 'p' (p95, p99.9, p(95)), found {scanner.found()}")
    if parenthesised:
        if not scanner.text.startswith(")", scanner.pos):
            raise scanner.error(f"expected ')' to close the percentile, found {scanner.found()}")
        scanner.pos += 1
    percentile = float(digits.replace("_", ""))
    if not 0 < percentile <= 100:
        raise scanner.error(
            f"percentile must be above 0 and at most 100, got {digits}; use min for the lowest value",
            number_column,
        )
    # "p95ms" or "p95x" would otherwise read as p95 followed by a unit-looking word.
    if scanner.match(_WORD):
        raise scanner.error(
            f"unknown statistic {scanner.text[start - 1 : scanner.pos]!r}; expected {_EXPECTED_STAT}", start
        )
    return Statistic("p", percentile)


def _parse_statistic(scanner: _Scanner) -> tuple[Statistic, int]:
    scanner.skip_spaces()
    start = scanner.column
    if (
        scanner.text.startswith("p", scanner.pos)
        and scanner.pos + 1 < len(scanner.text)
        and (scanner.text[scanner.pos + 1].isdigit() or scanner.text[scanner.pos + 1] == "(")
    ):
        scanner.pos += 1
        return _parse_percentile(scanner, start), start
    word = scanner.match(_WORD)
    if word is None:
        raise scanner.error(f"expected {_EXPECTED_STAT}, found {scanner.found()}")
    if word in _ALIASES:
        raise scanner.error(f"unknown statistic {word!r}; write {_ALIASES[word]!r} instead", start)
    if word not in STAT_NAMES:
        raise scanner.error(
            f"unknown statistic {word!r}{suggest(word, [*STAT_NAMES, 'p95', 'p99'])}; expected {_EXPECTED_STAT}",
            start,
        )
    return Statistic(word), start


def _parse_comparator(scanner: _Scanner, statistic: Statistic) -> str:
    scanner.skip_spaces()
    start = scanner.column
    token = scanner.match(_COMPARATOR)
    if token is None:
        raise scanner.error(f"expected {_EXPECTED_COMPARATOR} after {str(statistic)!r}, found {scanner.found()}")
    if token not in COMPARATORS:
        hint = {
            "=": " (write == for equality)",
            "=<": " (write <=)",
            "=>": " (write >=)",
            "===": " (write ==)",
        }
        raise scanner.error(f"expected {_EXPECTED_COMPARATOR}, found {token!r}{hint.get(token, '')}", start)
    return token


def parse_expression(text: str) -> Condition:
    """Parse one expression; raises ExpressionError saying where and what was expected."""
    scanner = _Scanner(text)
    scanner.skip_spaces()
    if not scanner.rest():
        raise scanner.error(f"empty expression; {_SHAPE}")
    statistic, statistic_column = _parse_statistic(scanner)
    comparator = _parse_comparator(scanner, statistic)
    scanner.skip_spaces()
    number = scanner.match(_NUMBER)
    if number is None:
        raise scanner.error(f"expected a number after {comparator!r}, found {scanner.found()}")
    scanner.skip_spaces()
    unit_column: int | None = scanner.column
    unit = scanner.match(_UNIT)
    if unit is None:
        unit_column = None
    elif unit not in UNITS:
        raise scanner.error(
            f"unknown unit {unit!r}{suggest(unit, list(UNITS))}; known: {', '.join(UNITS)}", unit_column
        )
    scanner.skip_spaces()
    if scanner.rest():
        raise scanner.error(f"unexpected {scanner.rest()!r} after the level; {_SHAPE}")
    return Condition(
        text=text.strip(),
        statistic=statistic,
        comparator=comparator,
        level=float(number.replace("_", "")),
        unit=unit,
        statistic_column=statistic_column,
        unit_column=unit_column,
    )
