"""Regenerate sample-results.json, the recorded run the report tests render.

    .venv/bin/python tests/data/make_sample_results.py

The figures are synthetic (seeded random numbers shaped like a run), chosen so the report shows every
status: most thresholds pass, some warn, one fails, and free_tier.cloudwatch_logs_bytes is left
unmeasured so it comes out as ERROR. Timestamps are fixed so the file is byte-for-byte reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.measure.results import ResultsWriter

OUT = Path(__file__).with_name("sample-results.json")
T0 = 1_750_000_000.0


def main() -> None:
    OUT.unlink(missing_ok=True)
    rng = np.random.default_rng(20251125)
    results = ResultsWriter.open(OUT)
    results.update_run(
        {
            "created_at": "2025-11-25T17:00:00+00:00",
            "backend": "embedded",
            "versions": {"postgresql": "17.6", "pgvector": "0.8.1", "pgbouncer": "1.24.1", "redis": "8.2.1"},
            "sizing": {"db_instance_class": "db.t3.micro", "cache_node_type": "cache.t3.micro", "max_connections": 112},
            "cgroups": {"in_force": False, "reason": "cgroup v2 tree is not delegated to this user"},
            "machine": {"cores": 2, "platform": "Linux-x86_64"},
            "data_profile": "synthetic test fixture (tests/data/make_sample_results.py), not a measurement",
            "git_revision": "0000000000000000000000000000000000000000",
        }
    )
    for worker in ("1", "2"):
        results.record_latency(
            "vector_search.latency_ms", rng.lognormal(np.log(18), 0.35, 1500), labels={"worker": worker}
        )
    for i in range(20):
        results.record_value("vector_search.recall_at_10", float(np.clip(rng.normal(0.965, 0.01), 0, 1)), t=T0 + 10 * i)
    results.record_series(
        "vector_search.recall_curve",
        [
            {"t": T0, "ef_search": ef, "recall_at_10": recall, "p95_ms": p95}
            for ef, recall, p95 in (
                (10, 0.82, 9.5),
                (20, 0.90, 12.0),
                (40, 0.95, 17.5),
                (80, 0.975, 27.0),
                (160, 0.988, 46.0),
                (320, 0.994, 88.0),
            )
        ],
    )
    results.record_latency("proxy.acquire_ms", rng.gamma(2.0, 1.6, 1200))
    for i in range(60):
        t = T0 + 5 * i
        results.record_value("rds.cpu_pct", float(np.clip(35 + 0.6 * i + rng.normal(0, 6), 0, 100)), t=t)
        results.record_value("cache.cpu_pct", float(np.clip(12 + rng.normal(0, 3), 0, 100)), t=t)
        results.record_value("rds.connections_pct", float(np.clip(20 + i + rng.normal(0, 3), 0, 78)), t=t)
        results.record_value("cache.used_memory_bytes", float(40e6 + 2e6 * i), t=t)
    for i in range(30):
        reads = 400
        hit_fraction = 0.9 - 0.5 * np.exp(-i / 5)
        results.record_rate("cache.hit_rate_pct", int(rng.binomial(reads, hit_fraction)), reads, t=T0 + 10 * i)
    results.record_count("cache.evictions", 0)
    durations = {"data_export": (8_000, 0.4), "data_deletion": (2_500, 0.3), "audit_logging": (120, 0.25)}
    errors = {"data_export": 0.06, "data_deletion": 0.12, "audit_logging": 0.0}
    for function, (median_ms, sigma) in durations.items():
        results.record_latency(f"lambda.{function}.duration_ms", rng.lognormal(np.log(median_ms), sigma, 200))
        for i in range(10):
            results.record_rate(
                f"lambda.{function}.error_rate_pct", int(rng.binomial(50, errors[function])), 50, t=T0 + 30 * i
            )
        results.record_count(f"lambda.{function}.throttles", 0)
    results.record_value("free_tier.rds_hours", 744.0, t=T0)
    results.record_value("free_tier.elasticache_hours", 744.0, t=T0)
    results.record_value("free_tier.lambda_requests_pct", 0.5, t=T0)
    results.record_value("free_tier.lambda_gb_seconds_pct", 2.1, t=T0)
    results.record_value("cloudwatch.custom_metrics", 2.0, t=T0)
    results.record_value("cost.monthly_usd", 27.5, t=T0)
    results.record_value("credits.cache_throttled_hours", 0.0, t=T0)
    results.record_value("credits.rds_surplus_usd", 1.2, t=T0)
    OUT.with_name(OUT.name + ".lock").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
