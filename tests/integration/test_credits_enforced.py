"""A drained unit, read back from the kernel: the cache node at its credit baseline, RDS at full speed
with its surplus growing, the data disk at the gp2 baseline."""

from __future__ import annotations

import time

import pytest

from harness.measure.sampling import ResourceSampler
from harness.services.cgroups import BURSTABLE_CPU_PERIOD_US, CgroupLimiter

pytestmark = pytest.mark.integration
CPU_LOOP = "DO $$DECLARE x int := 0; BEGIN FOR i IN 1..2000000 LOOP x := x + i % 7; END LOOP; END$$"


@pytest.fixture(scope="module")
def stack(drained_stack):
    """Not the session's stack (its default is cpu_credits = off): one started drained for this module."""
    return drained_stack


def _credit_facts(stack):
    facts = stack.facts.get("credits")
    assert facts and facts["mode"] == "drained", facts
    return facts


def test_an_unenforced_drained_unit_says_so(stack):
    facts = _credit_facts(stack)
    if facts["enforced"]:
        assert facts["redis_cgroup"] and facts["postgres_cgroup"]
    else:
        assert "credits NOT enforced" in facts["detail"]


def test_during_a_drained_run_the_cache_node_is_held_at_its_baseline_and_rds_bills_surplus(stack):
    facts = _credit_facts(stack)
    if not facts["enforced"]:
        pytest.skip(f"no writable cgroups here: {facts['detail']}")
    redis_group = CgroupLimiter(facts["redis_cgroup"])
    postgres_group = CgroupLimiter(facts["postgres_cgroup"])
    client = stack.redis.client(socket_timeout=5, socket_connect_timeout=5)
    try:
        with ResourceSampler(stack, interval_s=0.25).running() as samples:
            # Read the quota back while the node is under load: the cap holds during the run.
            quota_during = redis_group.cpu_limit()
            deadline = time.monotonic() + 3.0
            pipe = client.pipeline(transaction=False)
            batches = 0
            while time.monotonic() < deadline and batches < 10_000:
                for i in range(200):
                    pipe.set(f"credits-test:{i}", "x" * 64, ex=60)
                    pipe.get(f"credits-test:{i}")
                pipe.execute()
                batches += 1
            with stack.direct.connect(autocommit=True, prepare_threshold=None) as conn:
                conn.execute("SET statement_timeout = '10s'")
                # CPU-bound on RDS for longer than the baseline covers: an unlimited instance keeps full
                # speed and borrows surplus.
                deadline = time.monotonic() + 3.0
                for _ in range(100):
                    if time.monotonic() >= deadline:
                        break
                    # A PL/pgSQL loop: CPU only (a large generate_series spills to temp files, i.e. the disk).
                    conn.execute(CPU_LOOP)
    finally:
        client.close()
    assert quota_during == (pytest.approx(0.2), BURSTABLE_CPU_PERIOD_US)
    assert postgres_group.cpu_limit()[0] == pytest.approx(2.0)
    # The node's measured CPU cannot exceed its baseline share for long: 0.2 vCPU is 10 % of two vCPUs.
    redis_cpu = [v for _, v in samples.series("redis.cpu_pct")]
    assert redis_cpu and sum(redis_cpu) / len(redis_cpu) <= 10.0 * 1.5
    assert max(v for _, v in samples.series("redis.CPUCreditBalance")) < 0.05
    assert all(v == pytest.approx(0.2) for _, v in samples.series("redis.cpu_cap_vcpus"))
    # RDS's ledger (drained: it started at 0) books every sample: what it holds is what was earned minus
    # what was spent, and it borrowed surplus exactly when the run spent more than it earned. (How much
    # CPU PostgreSQL got depends on this shared machine's load, so the test does not assume which.)
    spent = sum(v for _, v in samples.series("postgres.CPUCreditUsage"))
    earned = sum(v for _, v in samples.series("postgres.cpu_credits_earned"))
    balance = samples.series("postgres.CPUCreditBalance")[-1][1]
    surplus = samples.series("postgres.CPUSurplusCreditBalance")[-1][1]
    assert balance - surplus == pytest.approx(earned - spent, abs=1e-9)
    assert (surplus > 0) == (spent > earned)
    assert max(v for _, v in samples.series("postgres.cpu_cap_vcpus")) == 2.0


def test_the_data_disk_is_capped_at_the_volume_baseline(stack):
    facts = _credit_facts(stack)
    storage = facts["storage"]
    if not storage.get("capped_read_iops"):
        assert "NOT capped" in storage["detail"]
        pytest.skip(storage["detail"])
    limits = CgroupLimiter(facts["postgres_cgroup"]).io_limits(storage["device"])
    assert limits["read_iops"] == limits["write_iops"] == storage["baseline_iops"] == 100
    # gp2 20 GiB allows 128 MiB/s; the db.t3.micro's own EBS link, 8 MB/s at its baseline, is tighter.
    assert limits["read_bps"] == 8_000_000
