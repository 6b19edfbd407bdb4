"""cpu_credits = live on a real stack: the cache node's ledger empties under load, the kernel's CPU quota falls to
the baseline, and it comes back once the node earns credits again; the ledgers are kept for the next run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.measure.sampling import ResourceSampler
from harness.services.cgroups import BURSTABLE_CPU_PERIOD_US, CgroupLimiter

pytestmark = pytest.mark.integration
LOAD_S = 30.0
RECOVER_S = 15.0


@pytest.fixture(scope="module")
def stack(live_stack):
    """Not the session's stack: one started live with a start balance of 0.02 credits."""
    return live_stack


def test_a_live_cache_node_falls_to_its_baseline_when_its_credits_run_out_and_recovers(stack):
    facts = stack.facts["credits"]
    assert facts["mode"] == "live" and facts["start_balance"] == pytest.approx(0.02)
    if not facts["enforced"]:
        assert "credits NOT enforced" in facts["detail"]
        pytest.skip(f"no writable cgroups here: {facts['detail']}")
    group = CgroupLimiter(facts["redis_cgroup"])
    # Started rested as far as the kernel knows: the node's vCPUs, at the burstable period.
    assert group.cpu_limit() == (pytest.approx(2.0), BURSTABLE_CPU_PERIOD_US)
    client = stack.redis.client(socket_timeout=5, socket_connect_timeout=5)
    quotas: list[float | None] = []
    try:
        with ResourceSampler(stack, interval_s=0.25).running() as samples:
            # Load until the kernel holds the baseline (0.02 credits is 1.2 s of one core), bounded in time.
            deadline = time.monotonic() + LOAD_S
            pipe = client.pipeline(transaction=False)
            while time.monotonic() < deadline:
                for i in range(200):
                    pipe.set(f"live-test:{i}", "x" * 64, ex=60)
                    pipe.get(f"live-test:{i}")
                pipe.execute()
                quotas.append(group.cpu_limit()[0])
                if quotas[-1] is not None and quotas[-1] < 1.0:
                    break
            throttled = quotas[-1]
            # Idle, the node earns 0.2 credits a minute and spends next to none: the cap lifts.
            deadline = time.monotonic() + RECOVER_S
            while time.monotonic() < deadline and group.cpu_limit()[0] != pytest.approx(2.0):
                time.sleep(0.1)
            recovered = group.cpu_limit()[0]
    finally:
        client.close()
    assert throttled == pytest.approx(0.2), f"the quota never fell to the baseline in {LOAD_S} s: {quotas[-5:]}"
    assert recovered == pytest.approx(2.0)
    balances = [v for _, v in samples.series("redis.CPUCreditBalance")]
    caps = [v for _, v in samples.series("redis.cpu_cap_vcpus")]
    assert min(balances) == 0.0 and any(c == pytest.approx(0.2) for c in caps) and caps[-1] == pytest.approx(2.0)
    # The ledgers outlive the run, as AWS's balance does: the next run resumes from here, not from 0.02.
    state = Path(stack.facts["state_dir"])
    saved = json.loads((state / "credits-redis.json").read_text())
    assert 0.0 <= saved["balance"] < 0.02 + 0.01
    if facts["storage"].get("capped_read_iops"):
        bucket = json.loads((state / "credits-postgres-io.json").read_text())
        assert 0 < bucket["balance"] <= bucket["io_credits_max"] == 5_400_000
