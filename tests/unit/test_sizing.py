import pytest

from harness.config import shipped_unit
from harness.sizing import (
    GIB,
    MIB,
    UnknownProfileError,
    lambda_vcpu_share,
    postgres_sizing,
    proxy_sizing,
    redis_sizing,
    unit_sizing,
)


@pytest.mark.parametrize(
    ("instance_class", "max_connections", "shared_buffers", "effective_cache", "maintenance_work_mem"),
    [
        # 1 GiB: 1073741824 / 9531392 = 112.6; a quarter and a half of memory; the 64 MiB floor.
        ("db.t3.micro", 112, 256 * MIB, 512 * MIB, 64 * MIB),
        ("db.t3.small", 225, 512 * MIB, 1 * GIB, 64 * MIB),
        # 4 GiB: 4294967296 * 1024 / 63963136 = 68759 kB, above the floor.
        ("db.t3.medium", 450, 1 * GIB, 2 * GIB, 68759 * 1024),
    ],
)
def test_rds_formulas(instance_class, max_connections, shared_buffers, effective_cache, maintenance_work_mem):
    sizing = postgres_sizing(instance_class)
    assert sizing.max_connections == max_connections
    assert sizing.shared_buffers_bytes == shared_buffers
    assert sizing.effective_cache_size_bytes == effective_cache
    assert sizing.maintenance_work_mem_bytes == maintenance_work_mem
    assert sizing.work_mem_bytes == 4 * MIB


def test_postgres_settings_are_in_units_postgres_reads():
    settings = postgres_sizing("db.t3.micro").server_settings()
    assert settings["shared_buffers"] == "262144kB"
    assert settings["max_connections"] == "112"


def test_elasticache_maxmemory_is_three_quarters_of_node_memory():
    sizing = redis_sizing("cache.t3.micro")
    assert sizing.maxmemory_bytes == 402_653_184
    assert sizing.maxmemory_policy == "volatile-lru"
    assert redis_sizing("cache.t3.micro", reserved_memory_percent=0).maxmemory_bytes == GIB // 2


def test_proxy_pool_uses_every_non_reserved_connection_by_default():
    pg = postgres_sizing("db.t3.micro")
    proxy = proxy_sizing(pg)
    assert proxy.pool_size == 112 - 3
    assert proxy_sizing(pg, max_connections_percent=50).pool_size == (112 - 3) // 2
    settings = proxy.pgbouncer_settings()
    assert settings["pool_mode"] == "transaction"
    assert settings["query_wait_timeout"] == "120"
    assert settings["client_idle_timeout"] == "1800"


@pytest.mark.parametrize(("memory_mb", "share"), [(1769, 1.0), (512, 0.289), (256, 0.145), (128, 0.072)])
def test_lambda_cpu_share_is_proportional_to_memory(memory_mb, share):
    assert lambda_vcpu_share(memory_mb) == pytest.approx(share, abs=1e-3)


def test_unit_sizing_carries_the_lambda_sizes_of_the_unit_spec():
    unit = unit_sizing("db.t3.micro", "cache.t3.micro", shipped_unit().lambda_memory_mb)
    assert unit.lambda_memory_mb == {"data_export": 512, "data_deletion": 256, "audit_logging": 128}


@pytest.mark.parametrize("bad", ["db.t3.nano", "", "DB.T3.MICRO"])
def test_unknown_instance_class_names_the_known_ones(bad):
    with pytest.raises(UnknownProfileError, match=r"db\.t3\.micro"):
        postgres_sizing(bad)
