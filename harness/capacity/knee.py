"""Where a capacity sweep bends: the latency knee, the size at which the index outgrows memory, and how
many months of growth remain before the knee.

Kept free of I/O so the rules can be checked on synthetic curves. HNSW search in memory costs about
log(n) distance computations, so p95 grows far slower than the data; once the index no longer fits
the cache every query pays reads, and p95 grows faster than the data. The knee is the first step where
it does: log-log slope above KNEE_SLOPE.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# p95 growing faster than the data itself (slope 1 on log-log axes) is not what an in-memory HNSW does.
KNEE_SLOPE = 1.0
# Below this share of block reads served from shared_buffers the index no longer fits: on RDS every miss
# is a storage read (gp2: 100 IOPS), so this is where latency falls off the cliff there.
CACHE_HIT_KNEE = 0.99


class CapacityInputError(ValueError):
    """Input the capacity maths cannot use; the message says what to change."""


@dataclass(frozen=True)
class SizePoint:
    size: int
    p95_ms: float
    # On-disk bytes of the vector index and of the documents table (heap + TOAST) at this size.
    index_bytes: int


def latency_knee(points: Sequence[SizePoint], slope: float = KNEE_SLOPE) -> int | None:
    """The first size whose p95 rose faster than `slope` on log-log axes from the size before, or None."""
    ordered = sorted(points, key=lambda p: p.size)
    for before, after in itertools.pairwise(ordered):
        if before.p95_ms <= 0 or after.p95_ms <= 0 or after.size <= before.size:
            continue
        step = math.log(after.p95_ms / before.p95_ms) / math.log(after.size / before.size)
        if step > slope:
            return after.size
    return None


def cache_knee(hit_ratios: Sequence[tuple[int, float | None]], limit: float = CACHE_HIT_KNEE) -> int | None:
    """The first size whose measured shared_buffers hit ratio fell below `limit`, or None."""
    for size, ratio in sorted(hit_ratios):
        if ratio is not None and ratio < limit:
            return size
    return None


def crossing_size(points: Sequence[SizePoint], budget_bytes: int) -> int | None:
    """The size at which the index reaches `budget_bytes` (shared_buffers, instance memory): interpolated
    between measured sizes, else extrapolated from the largest one's bytes per document. None without data."""
    ordered = sorted((p for p in points if p.size > 0 and p.index_bytes > 0), key=lambda p: p.size)
    if not ordered:
        return None
    for before, after in itertools.pairwise(ordered):
        if before.index_bytes < budget_bytes <= after.index_bytes:
            share = (budget_bytes - before.index_bytes) / (after.index_bytes - before.index_bytes)
            return round(before.size + share * (after.size - before.size))
    if budget_bytes <= ordered[0].index_bytes:
        return round(ordered[0].size * budget_bytes / ordered[0].index_bytes)
    last = ordered[-1]
    return round(last.size * budget_bytes / last.index_bytes)


@dataclass(frozen=True)
class Growth:
    """Data growth per month: a fraction compounding (`10%`) or a number of documents (`5000`)."""

    fraction: float | None = None
    documents: int | None = None

    def __str__(self) -> str:
        return f"{100 * self.fraction:g}%/month" if self.fraction is not None else f"{self.documents:,} docs/month"


_GROWTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%)?\s*(?:/\s*month)?\s*$")


def parse_growth(text: str) -> Growth:
    match = _GROWTH.match(text)
    if not match or float(match.group(1)) <= 0:
        raise CapacityInputError(
            f"growth {text!r}: give a positive percentage per month (`10%`) or documents per month (`5000`)"
        )
    if match.group(2):
        return Growth(fraction=float(match.group(1)) / 100)
    if "." in match.group(1):
        raise CapacityInputError(f"growth {text!r}: a number of documents is a whole number")
    return Growth(documents=int(match.group(1)))


def months_until(today: int, limit: int, growth: Growth) -> float:
    """Months until `today` documents, growing as `growth` says, reach `limit` (0 if already there)."""
    if today <= 0:
        raise CapacityInputError(f"today's size must be positive, got {today}")
    if today >= limit:
        return 0.0
    if growth.fraction is not None:
        return math.log(limit / today) / math.log1p(growth.fraction)
    assert growth.documents is not None
    return (limit - today) / growth.documents
