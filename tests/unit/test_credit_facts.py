"""What the embedded backend says about credit enforcement where it cannot enforce (no sockets, no servers)."""

from harness.backends.base import StackStatus
from harness.backends.embedded import EmbeddedBackend
from harness.cli.main import format_status
from harness.config import Settings
from harness.endpoints import Secret


def facts_for(tmp_path, **settings):
    backend = EmbeddedBackend(Settings(state_dir=tmp_path, **settings))
    creds = {"master_password": Secret("x"), "redis_password": Secret("y")}
    postgres, _, redis, _, _ = backend.local_services(creds)
    return backend.credit_facts(postgres, redis)


def test_a_drained_unit_without_cgroups_says_credits_are_not_enforced(tmp_path):
    facts = facts_for(tmp_path, cgroups="off", cpu_credits="drained")
    assert facts["mode"] == "drained" and not facts["enforced"]
    assert facts["detail"].startswith("credits NOT enforced: cgroups = off in configuration")
    assert facts["storage"]["detail"].startswith("storage NOT capped")
    assert (facts["storage"]["baseline_iops"], facts["storage"]["burst_iops"]) == (100, 3000)
    text = format_status(StackStatus("embedded", [], {"credits": facts}))
    assert "credits: credits NOT enforced" in text and "storage: gp2 20 GiB" in text and "NOT capped" in text


def test_cpu_credits_off_says_the_ledgers_are_only_modelled(tmp_path):
    facts = facts_for(tmp_path, cgroups="off", cpu_credits="off", storage_type="gp3")
    assert not facts["enforced"] and "ledgers modelled" in facts["detail"]
    assert facts["storage"]["baseline_iops"] == 3000


def test_a_drained_cache_node_starts_at_its_baseline_and_the_disk_at_the_tighter_baseline(tmp_path):
    backend = EmbeddedBackend(Settings(state_dir=tmp_path, cgroups="off", cpu_credits="drained"))
    assert backend.cache_start_vcpus() == 0.2
    disk = backend.postgres_disk_limits()
    # gp2 20 GiB: 100 IOPS, 128 MiB/s; the db.t3.micro's EBS link: 500 IOPS, 8 MB/s at baseline.
    assert (disk.iops, disk.bytes_s) == (100, 8_000_000)
    live = EmbeddedBackend(Settings(state_dir=tmp_path, cgroups="off", cpu_credits="live"))
    assert live.cache_start_vcpus() == 2.0
    assert (live.postgres_disk_limits().iops, live.postgres_disk_limits().bytes_s) == (3000, 128 * 2**20)
    assert EmbeddedBackend(Settings(state_dir=tmp_path, cpu_credits="off")).postgres_disk_limits() is None
