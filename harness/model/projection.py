"""Monthly projections: free-tier usage and cost after the free tier, from the unit's spec (fixtures/unit.yaml:
storage, Lambda memory sizes, free-tier limits), the monthly model (fixtures/monthly_model.yaml: volumes and
prices) and the Lambda durations a run measured.

Everything here is arithmetic on named inputs, so each figure in a report can be traced to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import UnitValues, shipped_unit
from harness.inputfiles import InputFileError, load_input_yaml
from harness.paths import FIXTURES_DIR

DEFAULT_MODEL = FIXTURES_DIR / "monthly_model.yaml"


class ModelError(ValueError):
    pass


@dataclass(frozen=True)
class MonthlyModel:
    rds_instances: int
    elasticache_nodes: int
    rds_storage_gb: float
    free_tier_hours_per_month: float
    billing_hours_per_month: float
    invocations: dict[str, int]
    free_tier: dict[str, float]
    prices: dict[str, float]
    lambda_memory_mb: dict[str, int]
    # CloudWatch alarm metrics and dashboards free a month (AWS's free tier; the document tracks neither).
    cloudwatch_free: dict[str, float]


def _number(raw: dict[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ModelError(f"{where}: {key} must be a non-negative number, got {value!r}")
    return float(value)


FREE_TIER_LIMITS = ("rds_hours", "elasticache_hours", "lambda_requests", "lambda_gb_seconds")


def load_model(path: Path = DEFAULT_MODEL, unit: UnitValues | None = None) -> MonthlyModel:
    """The volumes and prices of `path` with the unit's own figures from `unit` (default fixtures/unit.yaml)."""
    unit = unit or shipped_unit()
    try:
        raw = load_input_yaml(path, "the monthly model")
    except InputFileError as exc:
        raise ModelError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: expected a mapping at the top level")
    sections = {}
    for name in ("deployment", "lambda_invocations_per_month", "cloudwatch_free_tier", "prices_usd"):
        section = raw.get(name)
        if not isinstance(section, dict):
            raise ModelError(f"{path}: section {name!r} is missing or not a mapping")
        sections[name] = section
    deployment = sections["deployment"]
    invocations = sections["lambda_invocations_per_month"]
    unknown = sorted(set(invocations) - set(unit.lambda_memory_mb))
    if unknown:
        raise ModelError(
            f"{path}: unknown Lambda function(s) {', '.join(unknown)}; known: {', '.join(unit.lambda_memory_mb)}"
        )
    missing = [k for k in FREE_TIER_LIMITS if k not in unit.free_tier]
    if missing:
        raise ModelError(f"{unit.spec_file}: no free_tier.{', free_tier.'.join(missing)} fact")
    prices_needed = (
        "rds_db_t3_micro_postgres_per_hour",
        "rds_gp2_storage_per_gb_month",
        "elasticache_cache_t3_micro_per_hour",
        "lambda_per_gb_second",
        "lambda_per_million_requests",
        "cloudwatch_alarm_metric_per_month",
        "cloudwatch_dashboard_per_month",
    )
    return MonthlyModel(
        rds_instances=int(_number(deployment, "rds_instances", f"{path}: deployment")),
        elasticache_nodes=int(_number(deployment, "elasticache_nodes", f"{path}: deployment")),
        rds_storage_gb=float(unit.allocated_storage_gib),
        free_tier_hours_per_month=_number(raw, "free_tier_hours_per_month", str(path)),
        billing_hours_per_month=_number(raw, "billing_hours_per_month", str(path)),
        invocations={f: int(_number(invocations, f, f"{path}: lambda_invocations_per_month")) for f in invocations},
        free_tier={k: unit.free_tier[k] for k in FREE_TIER_LIMITS},
        prices={k: _number(sections["prices_usd"], k, f"{path}: prices_usd") for k in prices_needed},
        lambda_memory_mb=dict(unit.lambda_memory_mb),
        cloudwatch_free={
            k: _number(sections["cloudwatch_free_tier"], k, f"{path}: cloudwatch_free_tier")
            for k in ("alarm_metrics", "dashboards")
        },
    )


@dataclass(frozen=True)
class Projection:
    rds_hours: float
    elasticache_hours: float
    lambda_requests: int
    lambda_gb_seconds: float
    lambda_requests_pct: float
    lambda_gb_seconds_pct: float
    monthly_usd_after_free_tier: float
    breakdown_usd: dict[str, float]


def project(
    model: MonthlyModel,
    mean_billed_ms: dict[str, float],
    *,
    rds_cpu_surplus_usd: float,
    alarm_metrics: int = 0,
    dashboards: int = 0,
) -> Projection:
    """mean_billed_ms: each function's mean Billed Duration measured in the run (lambda.<function>.billed_duration_ms:
    Duration plus any Init Duration, rounded up to 1 ms, which is what Lambda charges; every function in the model
    must have one: a projection from a function never measured would be a guess). rds_cpu_surplus_usd: the
    Unlimited-mode surplus a db.t3.micro is billed a month (harness.model.credit_day's modelled day).
    alarm_metrics, dashboards: the deployment's CloudWatch footprint (harness.monitoring); what exceeds the free
    tier's alarm metrics and dashboards is billed per month."""
    if rds_cpu_surplus_usd < 0:
        raise ModelError(f"rds_cpu_surplus_usd must not be negative, got {rds_cpu_surplus_usd}")
    missing = sorted(f for f in model.invocations if f not in mean_billed_ms)
    if missing:
        raise ModelError(f"no measured billed duration for {', '.join(missing)}: run the Lambda scenario first")
    gb_seconds = sum(
        count * mean_billed_ms[f] / 1000 * model.lambda_memory_mb[f] / 1024 for f, count in model.invocations.items()
    )
    requests = sum(model.invocations.values())
    hours = model.billing_hours_per_month
    prices = model.prices
    breakdown = {
        "rds_instance": model.rds_instances * hours * prices["rds_db_t3_micro_postgres_per_hour"],
        "rds_cpu_surplus": model.rds_instances * rds_cpu_surplus_usd,
        "rds_storage": model.rds_storage_gb * prices["rds_gp2_storage_per_gb_month"],
        "elasticache_node": model.elasticache_nodes * hours * prices["elasticache_cache_t3_micro_per_hour"],
        "lambda_compute": gb_seconds * prices["lambda_per_gb_second"],
        "lambda_requests": requests / 1e6 * prices["lambda_per_million_requests"],
        "cloudwatch_alarms": max(0.0, alarm_metrics - model.cloudwatch_free["alarm_metrics"])
        * prices["cloudwatch_alarm_metric_per_month"],
        "cloudwatch_dashboards": max(0.0, dashboards - model.cloudwatch_free["dashboards"])
        * prices["cloudwatch_dashboard_per_month"],
    }
    return Projection(
        rds_hours=model.rds_instances * model.free_tier_hours_per_month,
        elasticache_hours=model.elasticache_nodes * model.free_tier_hours_per_month,
        lambda_requests=requests,
        lambda_gb_seconds=gb_seconds,
        lambda_requests_pct=100.0 * requests / model.free_tier["lambda_requests"],
        lambda_gb_seconds_pct=100.0 * gb_seconds / model.free_tier["lambda_gb_seconds"],
        monthly_usd_after_free_tier=sum(breakdown.values()),
        breakdown_usd=breakdown,
    )
