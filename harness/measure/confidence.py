"""How sure a figure is: 95 % confidence intervals for the statistics the sign-off judges.

Percentiles use distribution-free order-statistic bounds: the number of samples below the true p-th
percentile is Binomial(n, p), so the samples at ranks n*p -/+ z*sqrt(n*p*(1-p)) bound it with about 95 %
confidence whatever the latency distribution. A p95 from 400 requests gets a wide interval, one from
40,000 a narrow one. Rates (hit rate, error rate) use the Wilson score interval, which stays inside
[0, 1] and behaves at 0 and 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Two-sided 95 %.
Z_95 = 1.959963984540054


def percentile_rank_bounds(n: int, percentile: float, z: float = Z_95) -> tuple[int, int]:
    """1-based ranks (lower, upper) of the order statistics bounding the percentile; clipped to 1..n."""
    if n <= 0:
        raise ValueError("no samples")
    p = percentile / 100.0
    centre = n * p
    spread = z * math.sqrt(n * p * (1 - p))
    lower = max(1, math.floor(centre - spread))
    upper = min(n, math.ceil(centre + spread) + 1)
    return lower, upper


def percentile_interval(n: int, percentile: float, value_at_rank: Callable[[int], float]) -> tuple[float, float]:
    """The interval's ends, read from the data by rank (a histogram or a sorted array)."""
    lower, upper = percentile_rank_bounds(n, percentile)
    return value_at_rank(lower), value_at_rank(upper)


def wilson_interval(hits: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """95 % interval of a proportion hits/total, as fractions 0..1."""
    if total <= 0:
        raise ValueError("no trials")
    p = hits / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def relative_half_width(interval: tuple[float, float], value: float) -> float:
    """Half the interval's width as a fraction of the value: the precision a sequential stop aims for."""
    if value == 0:
        return math.inf if interval[1] > interval[0] else 0.0
    return (interval[1] - interval[0]) / 2 / abs(value)
