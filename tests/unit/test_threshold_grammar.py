"""The threshold expression grammar: what parses to what, and where and why malformed input fails."""

from __future__ import annotations

import pytest

from harness.thresholds import ExpressionError, parse_expression

# (expression, statistic, comparator, level, unit as written)
VALID = [
    ("p95 < 50ms", "p95", "<", 50.0, "ms"),
    ("p99 <= 2s", "p99", "<=", 2.0, "s"),
    ("p(99.9)<1.5s", "p99.9", "<", 1.5, "s"),
    ("p99.9 < 10", "p99.9", "<", 10.0, None),
    ("p100 <= 3 min", "p100", "<=", 3.0, "min"),
    ("rate < 5%", "rate", "<", 5.0, "%"),
    ("rate>=70%", "rate", ">=", 70.0, "%"),
    ("min >= 0.95", "min", ">=", 0.95, None),
    ("max < 90%", "max", "<", 90.0, "%"),
    ("mean < 10", "mean", "<", 10.0, None),
    ("count == 0", "count", "==", 0.0, None),
    ("value < 700", "value", "<", 700.0, None),
    ("value < 700h", "value", "<", 700.0, "h"),
    ("value <= 5 GB", "value", "<=", 5.0, "GB"),
    ("value <= 512MiB", "value", "<=", 512.0, "MiB"),
    ("max < 250_000ms", "max", "<", 250000.0, "ms"),
    ("  mean > -5  ", "mean", ">", -5.0, None),
    ("value < 25USD", "value", "<", 25.0, "USD"),
    ("p50 < 800us", "p50", "<", 800.0, "us"),
]


@pytest.mark.parametrize(("text", "statistic", "comparator", "level", "unit"), VALID)
def test_valid_expressions(text: str, statistic: str, comparator: str, level: float, unit: str | None) -> None:
    condition = parse_expression(text)
    assert str(condition.statistic) == statistic
    assert condition.comparator == comparator
    assert condition.level == level
    assert condition.unit == unit


# (expression, 1-based column of the error, fragment of the message)
MALFORMED = [
    ("", 1, "empty expression"),
    ("   ", 4, "empty expression"),
    ("avg < 5", 1, "write 'mean' instead"),
    ("median < 5ms", 1, "write 'p50' instead"),
    ("mena < 5", 1, "unknown statistic 'mena' (did you mean 'mean'?)"),
    ("p95x < 5", 1, "unknown statistic 'p95x'"),
    ("p < 5", 1, "unknown statistic 'p'"),
    ("p0 < 5", 2, "percentile must be above 0 and at most 100"),
    ("p101 < 5", 2, "percentile must be above 0 and at most 100"),
    ("p(95 < 5", 5, "expected ')' to close the percentile"),
    ("p() < 5", 3, "expected a percentile after 'p'"),
    ("95 < 5", 1, "expected a statistic"),
    ("p95 50ms", 5, "expected a comparator (<, <=, >, >=, ==) after 'p95', found '50ms'"),
    ("p95 => 50ms", 5, "found '=>' (write >=)"),
    ("p95 =< 50ms", 5, "found '=<' (write <=)"),
    ("count = 0", 7, "found '=' (write == for equality)"),
    ("p95 != 5", 5, "found '!='"),
    ("p95 <", 6, "expected a number after '<', found the end of the expression"),
    ("p95 < ms", 7, "expected a number after '<', found 'ms'"),
    ("p95 < .5s", 7, "expected a number after '<', found '.5s'"),
    ("p95 < 50 mss", 10, "unknown unit 'mss'"),
    ("p95 < 50mb", 9, "unknown unit 'mb' (did you mean 'MB'?)"),
    ("rate < 5%%", 9, "unknown unit '%%'"),
    ("p95 < 50ms extra", 12, "unexpected 'extra' after the level"),
    ("count == 0 0", 12, "unexpected '0' after the level"),
    ("p95 < 1e3", 8, "unknown unit 'e'"),
]


@pytest.mark.parametrize(("text", "column", "fragment"), MALFORMED)
def test_malformed_expressions(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert caught.value.column == column
    assert fragment in caught.value.message


def test_comparisons_follow_the_comparator() -> None:
    assert parse_expression("p95 < 50").holds(49.9, 50)
    assert not parse_expression("p95 < 50").holds(50, 50)
    assert parse_expression("p95 <= 50").holds(50, 50)
    assert parse_expression("rate >= 70").holds(70, 70)
    assert not parse_expression("rate > 70").holds(70, 70)
    assert parse_expression("count == 0").holds(0, 0)
    assert not parse_expression("count == 0").holds(1, 0)
