"""Which instance class to buy: per-class capacity (largest data size meeting the thresholds, highest
sustained rate) and monthly cost, and the cheapest class that holds a stated target.

A class counts only for what was measured on it: a sweep that stopped below the target size, or a
saturation rate taken at a smaller size than the target, proves nothing about the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.capacity.knee import CapacityInputError
from harness.config import UnitValues, shipped_unit
from harness.inputfiles import InputFileError, brief, load_input_yaml
from harness.model.projection import DEFAULT_MODEL


@dataclass(frozen=True)
class ClassCapacity:
    db_class: str
    cache_node: str
    largest_measured: int
    # Largest swept size at which every judged threshold passed; None if none did.
    largest_ok: int | None
    # Highest request rate sustained with every judged threshold met, and the size it was found at.
    sustained_rate: float | None
    saturation_size: int | None
    monthly_usd: float | None


@dataclass(frozen=True)
class Target:
    documents: int
    rate_per_s: float


@dataclass(frozen=True)
class Recommendation:
    choice: str | None
    # Per class: "holds the target" or why it does not (or why it is unknown).
    verdicts: dict[str, str]

    def summary(self, target: Target) -> str:
        wanted = f"{target.documents:,} documents at {target.rate_per_s:g} searches/s"
        if self.choice is None:
            return f"no measured class holds {wanted}: measure a larger class or a longer sweep"
        return f"{self.choice} is the cheapest measured class that holds {wanted}"


def verdict(row: ClassCapacity, target: Target) -> str | None:
    """None when the class holds the target, else the reason it does not (or cannot be said to)."""
    if row.largest_ok is None:
        return "meets the thresholds at no measured size"
    if row.largest_ok < target.documents:
        if row.largest_ok == row.largest_measured:
            return f"unknown: the sweep stopped at {row.largest_measured:,}, below the target size"
        return f"holds only up to {row.largest_ok:,} documents"
    if row.sustained_rate is None or row.saturation_size is None:
        return "no saturation rate was measured"
    if row.saturation_size < target.documents:
        return f"unknown: its rate was measured at {row.saturation_size:,} documents, below the target size"
    if row.sustained_rate < target.rate_per_s:
        return f"sustains {row.sustained_rate:g}/s, below the target rate"
    return None


def recommend(rows: Sequence[ClassCapacity], target: Target) -> Recommendation:
    verdicts: dict[str, str] = {}
    holding: list[ClassCapacity] = []
    for row in rows:
        reason = verdict(row, target)
        verdicts[row.db_class] = reason or "holds the target"
        if reason is None:
            holding.append(row)
    holding.sort(key=lambda r: (r.monthly_usd if r.monthly_usd is not None else float("inf"), r.db_class))
    return Recommendation(holding[0].db_class if holding else None, verdicts)


@dataclass(frozen=True)
class CapacityModel:
    hourly_usd: dict[str, float]
    billing_hours: float
    storage_usd: float
    target: Target

    def monthly_usd(self, db_class: str, cache_node: str) -> float | None:
        if db_class not in self.hourly_usd or cache_node not in self.hourly_usd:
            return None
        return self.billing_hours * (self.hourly_usd[db_class] + self.hourly_usd[cache_node]) + self.storage_usd


def _positive(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw <= 0:
        raise CapacityInputError(f"{what} must be a positive number, got {brief(repr(raw))}")
    return float(raw)


def _non_negative(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 0:
        raise CapacityInputError(f"{what} must be a number, 0 or more, got {brief(repr(raw))}")
    return float(raw)


def load_capacity_model(path: Path = DEFAULT_MODEL, unit: UnitValues | None = None) -> CapacityModel:
    """Prices and the default target from the monthly model's capacity sections; the storage billed is the
    unit's (fixtures/unit.yaml's db.allocated_storage_gb unless `unit` says otherwise)."""
    unit = unit or shipped_unit()
    try:
        raw = load_input_yaml(path, "the monthly model")
    except InputFileError as exc:
        raise CapacityInputError(str(exc)) from None
    if not isinstance(raw, dict):
        raise CapacityInputError(f"{path}: expected a mapping at the top level")
    prices, target = raw.get("instance_prices_usd_per_hour"), raw.get("capacity_target")
    if not isinstance(prices, dict) or not isinstance(target, dict):
        raise CapacityInputError(
            f"{path}: sections instance_prices_usd_per_hour and capacity_target are needed "
            "(see fixtures/monthly_model.yaml)"
        )
    storage_prices = raw.get("prices_usd") or {}
    if not isinstance(storage_prices, dict):
        raise CapacityInputError(f"{path}: prices_usd must be a mapping (see fixtures/monthly_model.yaml)")
    storage = unit.allocated_storage_gib * _non_negative(
        storage_prices.get("rds_gp2_storage_per_gb_month", 0), f"{path}: prices_usd.rds_gp2_storage_per_gb_month"
    )
    return CapacityModel(
        hourly_usd={brief(k): _positive(v, f"{path}: price of {brief(k)}") for k, v in prices.items()},
        billing_hours=_positive(raw.get("billing_hours_per_month", 730), f"{path}: billing_hours_per_month"),
        storage_usd=storage,
        target=Target(
            int(_positive(target.get("documents"), f"{path}: capacity_target.documents")),
            _positive(target.get("search_rate_per_s"), f"{path}: capacity_target.search_rate_per_s"),
        ),
    )
