"""A modelled day of CPU credits: what the traffic of fixtures/monthly_model.yaml, at the CPU per request a
run measured, does to each burstable instance's balance hour by hour, once days have settled.

A short sign-off cannot show that the cache node runs out of credits at 3 p.m. or that RDS bills surplus
every evening; this arithmetic can. Minute steps, so a throttled stretch inside an hour is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.inputfiles import InputFileError, load_input_yaml
from harness.model.credits import CpuCreditLedger
from harness.sizing import CpuCredits

HOURS = 24
# Days run before the reported one, so that it starts from the balance the traffic settles at (a full
# balance at most: the one a rested instance has).
SETTLE_DAYS = 7


class TrafficError(ValueError):
    pass


@dataclass(frozen=True)
class Traffic:
    """Requests per month per instance, spread over the day by a 24-hour shape (ours: the model's)."""

    requests_per_month: dict[str, float]  # "postgres", "redis"
    hourly_shape: list[float]  # relative weights, normalised here
    days_per_month: float

    def hourly_requests(self, service: str) -> list[float]:
        total = sum(self.hourly_shape)
        per_day = self.requests_per_month[service] / self.days_per_month
        return [per_day * w / total for w in self.hourly_shape]


def load_traffic(path: Path) -> Traffic:
    try:
        raw = load_input_yaml(path, "the monthly model")
    except InputFileError as exc:
        raise TrafficError(str(exc)) from None
    section: Any = raw.get("traffic") if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise TrafficError(f"{path}: section 'traffic' is missing or not a mapping")
    shape = section.get("hourly_shape")
    if not isinstance(shape, list) or len(shape) != HOURS or not all(isinstance(w, int | float) for w in shape):
        raise TrafficError(f"{path}: traffic.hourly_shape must be 24 numbers (one weight per hour), got {shape!r}")
    if min(shape) < 0 or sum(shape) <= 0:
        raise TrafficError(f"{path}: traffic.hourly_shape weights must be non-negative and not all zero")
    requests = {}
    for service, key in (("postgres", "db_requests_per_month"), ("redis", "cache_requests_per_month")):
        value = section.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise TrafficError(f"{path}: traffic.{key} must be a non-negative number, got {value!r}")
        requests[service] = float(value)
    hours = raw.get("billing_hours_per_month", 730)
    return Traffic(requests, [float(w) for w in shape], float(hours) / HOURS)


@dataclass(frozen=True)
class ModelledDay:
    balance_by_hour: list[float]  # at the end of each hour
    surplus_by_hour: list[float]
    throttled_hours: float  # time the instance wanted more than its capped CPU
    surplus_credits: float  # borrowed that day and not repaid (charged now or later)
    surplus_usd_per_month: float


def model_day(credits: CpuCredits, demand_vcpu_s_by_hour: list[float], days_per_month: float) -> ModelledDay:
    """demand_vcpu_s_by_hour: CPU-seconds (summed over vCPUs) the instance's traffic asks for, per hour."""
    if len(demand_vcpu_s_by_hour) != HOURS or min(demand_vcpu_s_by_hour) < 0:
        raise ValueError("demand must be 24 non-negative hourly figures")
    ledger = CpuCreditLedger(credits, credits.max_balance)
    balances: list[float] = []
    surpluses: list[float] = []
    throttled_minutes = 0
    owed_before = 0.0
    for day in range(SETTLE_DAYS + 1):
        last = day == SETTLE_DAYS
        if last:
            balances, surpluses, throttled_minutes = [], [], 0
            owed_before = ledger.surplus_balance + ledger.surplus_charged
        for hour in range(HOURS):
            per_minute = demand_vcpu_s_by_hour[hour] / 60.0
            for _ in range(60):
                allowed = ledger.cap_vcpus * 60.0
                if per_minute > allowed + 1e-9:
                    throttled_minutes += 1
                ledger.step(60.0, min(per_minute, allowed))
            balances.append(ledger.balance)
            surpluses.append(ledger.surplus_balance)
    owed = ledger.surplus_balance + ledger.surplus_charged - owed_before
    return ModelledDay(
        balance_by_hour=balances,
        surplus_by_hour=surpluses,
        throttled_hours=throttled_minutes / 60.0,
        surplus_credits=owed,
        surplus_usd_per_month=ledger.surplus_usd(owed) * days_per_month,
    )


def demand_by_hour(traffic: Traffic, service: str, cpu_s_per_request: float, idle_vcpus: float) -> list[float]:
    """CPU-seconds per hour: the traffic at the measured CPU per request, plus what the idle server uses."""
    return [n * cpu_s_per_request + idle_vcpus * 3600.0 for n in traffic.hourly_requests(service)]
