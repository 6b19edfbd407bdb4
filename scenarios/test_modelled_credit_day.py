"""A modelled day of CPU credits: the CPU one cache-aside request costs each server, measured here, times
the traffic of fixtures/monthly_model.yaml hour by hour, through each burstable instance's credit ledger.
Judged by the hours the cache node spends throttled and the RDS surplus per month (both ours); the surplus
goes into cost.monthly_usd (test_monthly_projection runs after this file).

A sign-off lasts minutes; credits are spent and earned over hours. The arithmetic needs only the measured
CPU, so the day is modelled on any machine, whether or not it can enforce the credits (the run's facts say
which).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pgvector.psycopg import register_vector

from harness.app.cache_aside import CacheAside
from harness.measure.sampling import server_cpu_seconds, server_usage
from harness.model.credit_day import demand_by_hour, load_traffic, model_day
from harness.model.projection import DEFAULT_MODEL
from harness.sizing import cache_node_type, db_instance_class

IDLE_S = 2.0
MAX_REQUESTS = 600
MAX_SECONDS = 20.0


def redis_cpu_and_commands(client) -> tuple[float, int]:
    cpu, stats = client.info("cpu"), client.info("stats")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), int(stats["total_commands_processed"])


def test_a_modelled_day_of_cpu_credits(stack, seeded, results):
    if not server_cpu_seconds(stack).get("postgres"):
        pytest.skip(f"the modelled day needs the servers' CPU: {server_usage(stack)[1]}")
    with seeded.app.connect(autocommit=True, prepare_threshold=None) as conn:
        register_vector(conn)
        users = conn.execute("SELECT user_id, tenant_id FROM users ORDER BY user_id LIMIT 5000").fetchall()
        redis = stack.redis.client(socket_timeout=5, socket_connect_timeout=5)
        try:
            cache = CacheAside(redis, conn)
            queries = seeded.ground_truth.queries
            rng = np.random.default_rng(15)
            # Idle first: what the servers use with nothing to do (background writers, Redis's cron).
            pg0, (r0, _) = server_cpu_seconds(stack)["postgres"], redis_cpu_and_commands(redis)
            time.sleep(IDLE_S)
            pg1, (r1, c1) = server_cpu_seconds(stack)["postgres"], redis_cpu_and_commands(redis)
            idle = {"postgres": (pg1 - pg0) / IDLE_S, "redis": (r1 - r0) / IDLE_S}
            # Then requests: half profiles, half searches, mostly misses, so both servers work.
            done, started = 0, time.monotonic()
            while done < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
                user, tenant = users[int(rng.integers(len(users)))]
                if done % 2:
                    cache.profile(user)
                else:
                    cache.search(user, tenant, queries[int(rng.integers(len(queries)))])
                done += 1
            took = time.monotonic() - started
            pg2, (r2, c2) = server_cpu_seconds(stack)["postgres"], redis_cpu_and_commands(redis)
        finally:
            redis.close()
    statements = cache.counters.misses
    assert statements > 0 and c2 > c1, "the requests reached neither server"
    # CPU per request beyond the idle floor (which the model adds back hour by hour).
    per_request = {
        "postgres": max(0.0, pg2 - pg1 - idle["postgres"] * took) / statements,
        "redis": max(0.0, r2 - r1 - idle["redis"] * took) / (c2 - c1),
    }
    traffic = load_traffic(DEFAULT_MODEL)
    facts = stack.facts
    models = {
        "postgres": db_instance_class(facts["postgres"]["instance_class"]).credits,
        "redis": cache_node_type(facts["redis"]["node_type"]).credits,
    }
    days: dict[str, object] = {}
    figures = {"cache_throttled_hours": 0.0, "rds_surplus_usd": 0.0}
    for service, credits in models.items():
        if credits is None:
            continue  # not burstable: nothing to model
        demand = demand_by_hour(traffic, service, per_request[service], idle[service])
        day = model_day(credits, demand, traffic.days_per_month)
        days[service] = {
            "cpu_s_per_request": per_request[service],
            "idle_vcpus": idle[service],
            "demand_vcpus_by_hour": [d / 3600 for d in demand],
            "balance_by_hour": day.balance_by_hour,
            "surplus_by_hour": day.surplus_by_hour,
            "throttled_hours": day.throttled_hours,
            "surplus_usd_per_month": day.surplus_usd_per_month,
        }
        if service == "redis":
            figures["cache_throttled_hours"] = day.throttled_hours
        else:
            figures["rds_surplus_usd"] = day.surplus_usd_per_month
        # The ledger never holds more than its maximum nor less than nothing, hour by hour.
        assert all(0.0 <= b <= credits.max_balance for b in day.balance_by_hour), service
        if credits.mode == "unlimited":
            assert day.throttled_hours == 0.0, f"{service} runs Unlimited: it is never throttled"
    results.record_value("credits.cache_throttled_hours", figures["cache_throttled_hours"])
    results.record_value("credits.rds_surplus_usd", figures["rds_surplus_usd"])
    results.update_run({"credit_day": days, "credits": facts.get("credits", {})})
    print(
        f"credit day: {done} requests, CPU per request postgres {per_request['postgres'] * 1e3:.2f} ms "
        f"({statements} statements), redis {per_request['redis'] * 1e6:.1f} us per command; idle "
        f"{idle['postgres']:.3f} / {idle['redis']:.3f} vCPU; cache throttled {figures['cache_throttled_hours']:.2f} h "
        f"a day, RDS surplus {figures['rds_surplus_usd']:.2f} USD a month"
    )
