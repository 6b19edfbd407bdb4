"""cpu_credits = live: the sampler moves the cache node's CPU quota as its ledger empties and refills
(a fake cgroup v1 tree stands in for the kernel's)."""

from types import SimpleNamespace

import pytest

from harness.measure.sampling import ResourceSampler
from harness.model.credits import CpuCreditLedger
from harness.services.cgroups import CgroupLimiter
from harness.sizing import cache_node_type


def governed_sampler(tmp_path, balance: float) -> tuple[ResourceSampler, CgroupLimiter]:
    for controller, name in (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.cfs_quota_us")):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / name).write_text("-1\n")
    group = CgroupLimiter("dbunit-test-redis", root=tmp_path)
    group.apply(memory_bytes=2**29, vcpus=2.0, cpu_period_us=10_000)
    endpoints = SimpleNamespace(facts={"credits": {"mode": "live"}})
    sampler = ResourceSampler(endpoints)  # type: ignore[arg-type]
    sampler.ledgers["redis"] = CpuCreditLedger(cache_node_type("cache.t3.micro").credits, balance)
    sampler.attach_cgroup("redis", group, governed=True)
    return sampler, group


def test_the_live_cache_node_falls_to_its_baseline_when_its_balance_runs_out_and_recovers(tmp_path):
    sampler, group = governed_sampler(tmp_path, balance=1.0)
    values: dict[str, float] = {}
    # 30 s at one full core spends 0.5 credits: still a balance, still full CPU.
    sampler.book_credits(values, "redis", 30.0, 30.0)
    assert group.cpu_limit() == (2.0, 10_000) and values["redis.cpu_cap_vcpus"] == 2.0
    # Another 60 s at one core empties it: the quota drops to 0.2 vCPU (2 ms per 10 ms).
    sampler.book_credits(values, "redis", 60.0, 60.0)
    assert values["redis.CPUCreditBalance"] == 0.0
    assert group.cpu_limit() == (pytest.approx(0.2), 10_000) and values["redis.cpu_cap_vcpus"] == pytest.approx(0.2)
    assert (tmp_path / "cpu" / "dbunit-test-redis" / "cpu.cfs_quota_us").read_text() == "2000"
    # Idle for a minute earns 0.2 credits: full CPU again.
    sampler.book_credits(values, "redis", 60.0, 0.0)
    assert group.cpu_limit() == (2.0, 10_000)
    assert values["redis.cpu_credits_earned"] == pytest.approx(0.2)
