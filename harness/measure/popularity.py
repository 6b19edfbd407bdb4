"""Who asks for what: key popularity that follows a Zipf law, as real user traffic does."""

from __future__ import annotations

import numpy as np


class ZipfKeys:
    """Draws from `keys` with P(rank r) proportional to 1 / r**s.

    s = 0 is uniform; s around 1 is typical of web traffic (a few users make most requests). Ranks are
    assigned to keys by a seeded shuffle, so the hottest key is not simply the smallest id.
    """

    def __init__(self, keys: np.ndarray | list[int], s: float, seed: int) -> None:
        keys = np.asarray(keys)
        if keys.size == 0:
            raise ValueError("ZipfKeys needs at least one key")
        if s < 0:
            raise ValueError(f"the Zipf exponent must be >= 0, got {s}")
        self.s = s
        rng = np.random.default_rng(seed)
        self.keys = keys[rng.permutation(keys.size)]
        weights = 1.0 / np.arange(1, keys.size + 1, dtype=np.float64) ** s
        self.cdf = np.cumsum(weights / weights.sum())
        self.rng = np.random.default_rng(seed + 1)

    def sample(self, n: int) -> np.ndarray:
        ranks = np.searchsorted(self.cdf, self.rng.random(n), side="right")
        return self.keys[np.minimum(ranks, self.keys.size - 1)]

    def expected_hit_rate(self, cached: int) -> float:
        """Share of requests that fall on the `cached` most popular keys: an LRU cache's hit-rate ceiling."""
        if cached <= 0:
            return 0.0
        return float(self.cdf[min(cached, self.cdf.size) - 1])

    def child(self, seed: int) -> ZipfKeys:
        """The same popularity (same hot keys) with its own random stream, for one client of many."""
        twin = object.__new__(ZipfKeys)
        twin.s, twin.keys, twin.cdf = self.s, self.keys, self.cdf
        twin.rng = np.random.default_rng(seed)
        return twin
