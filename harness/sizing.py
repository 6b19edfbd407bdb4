"""Instance sizing: the one place where AWS instance classes turn into server settings.

Every figure the embedded stack (and the compose file) applies comes from these tables and the
formulas AWS documents for RDS parameter groups and ElastiCache reserved memory. Adding a class is
one table row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

GIB = 1024**3
MIB = 1024**2
KIB = 1024
PG_PAGE = 8 * KIB

# Lambda allocates CPU in proportion to memory; 1,769 MB buys one full vCPU.
LAMBDA_MB_PER_VCPU = 1769


@dataclass(frozen=True)
class CpuCredits:
    """How a burstable (T-family) class earns and spends CPU credits.

    One credit is one vCPU at 100 % for one minute. Documented by AWS for T2/T3/T4g (EC2 burstable
    performance instances; RDS and ElastiCache node-type pages): RDS runs T3/T4g in Unlimited mode
    (never throttled, surplus billed), ElastiCache in Standard mode (lowered to the baseline once the
    balance is spent). T3/T4g have no launch credits.
    """

    vcpus: int
    baseline_per_vcpu: float  # fraction of each vCPU the class may use without spending credits
    credits_per_hour: float
    max_balance: float
    mode: str  # "unlimited" or "standard"
    surplus_usd_per_vcpu_hour: float  # what a surplus credit costs in Unlimited mode (0 in Standard)

    @property
    def baseline_vcpus(self) -> float:
        """CPU the instance keeps with an empty balance in Standard mode (0.2 vCPU for a t3.micro)."""
        return self.vcpus * self.baseline_per_vcpu


def _t_micro(mode: str, surplus_usd: float) -> CpuCredits:
    return CpuCredits(2, 0.10, 12.0, 288.0, mode, surplus_usd)


# RDS T3 Unlimited surplus: 0.075 USD per vCPU-hour (RDS pricing); T4g is billed at 0.075 as well.
RDS_SURPLUS_USD_PER_VCPU_HOUR = 0.075


@dataclass(frozen=True)
class EbsLink:
    """The instance's own link to EBS, a second limit beside the volume's (EC2 EBS-optimized table)."""

    baseline_iops: int
    baseline_bytes_s: int
    burst_iops: int
    burst_bytes_s: int


# t3.micro: 64 Mbps / 500 IOPS baseline, 1,536 Mbps / 11,800 IOPS for 30 minutes a day.
T3_MICRO_EBS = EbsLink(500, 64_000_000 // 8, 11_800, 1_536_000_000 // 8)


@dataclass(frozen=True)
class DbInstanceClass:
    name: str
    vcpus: int
    memory_bytes: int
    credits: CpuCredits | None = None  # None: not burstable
    ebs: EbsLink | None = None  # None: the volume is the only limit modelled


@dataclass(frozen=True)
class CacheNodeType:
    name: str
    vcpus: int
    memory_bytes: int
    credits: CpuCredits | None = None


DB_INSTANCE_CLASSES: dict[str, DbInstanceClass] = {
    c.name: c
    for c in (
        DbInstanceClass("db.t3.micro", 2, 1 * GIB, _t_micro("unlimited", RDS_SURPLUS_USD_PER_VCPU_HOUR), T3_MICRO_EBS),
        DbInstanceClass("db.t4g.micro", 2, 1 * GIB, _t_micro("unlimited", RDS_SURPLUS_USD_PER_VCPU_HOUR), T3_MICRO_EBS),
        # EC2 T3 table: small 20 % baseline per vCPU, 24 credits/h, 576 max; medium 20 %, 24/h, 576.
        DbInstanceClass(
            "db.t3.small", 2, 2 * GIB, CpuCredits(2, 0.20, 24.0, 576.0, "unlimited", RDS_SURPLUS_USD_PER_VCPU_HOUR)
        ),
        DbInstanceClass(
            "db.t3.medium", 2, 4 * GIB, CpuCredits(2, 0.20, 24.0, 576.0, "unlimited", RDS_SURPLUS_USD_PER_VCPU_HOUR)
        ),
        # Not burstable: no credits, full CPU all the time (a comparison point).
        DbInstanceClass("db.m5.large", 2, 8 * GIB),
    )
}

CACHE_NODE_TYPES: dict[str, CacheNodeType] = {
    c.name: c
    for c in (
        CacheNodeType("cache.t3.micro", 2, GIB // 2, _t_micro("standard", 0.0)),
        CacheNodeType("cache.t4g.micro", 2, GIB // 2, _t_micro("standard", 0.0)),
        # Named by the seed document; AWS no longer sells it. EC2 T2 table: 10 % of 1 vCPU, 6/h, 144 max.
        CacheNodeType("cache.t2.micro", 1, int(0.555 * GIB), CpuCredits(1, 0.10, 6.0, 144.0, "standard", 0.0)),
        CacheNodeType("cache.t3.small", 2, int(1.37 * GIB), CpuCredits(2, 0.20, 24.0, 576.0, "standard", 0.0)),
        CacheNodeType("cache.m5.large", 2, int(6.38 * GIB)),
    )
}

# The unit's Lambda functions (functions/<name>/); their memory sizes and timeouts are facts of
# fixtures/unit.yaml (lambda.<name>.memory_mb, lambda.<name>.timeout_s), read through Settings.unit.
LAMBDA_FUNCTIONS = ("data_export", "data_deletion", "audit_logging")


class UnknownProfileError(ValueError):
    pass


def db_instance_class(name: str) -> DbInstanceClass:
    try:
        return DB_INSTANCE_CLASSES[name]
    except KeyError:
        known = ", ".join(sorted(DB_INSTANCE_CLASSES))
        raise UnknownProfileError(f"unknown DB instance class {name!r}; known: {known}") from None


def cache_node_type(name: str) -> CacheNodeType:
    try:
        return CACHE_NODE_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(CACHE_NODE_TYPES))
        raise UnknownProfileError(f"unknown cache node type {name!r}; known: {known}") from None


@dataclass(frozen=True)
class PostgresSizing:
    """Settings an RDS default parameter group gives an instance of this class."""

    instance_class: str
    vcpus: int
    memory_bytes: int
    max_connections: int
    superuser_reserved_connections: int
    shared_buffers_bytes: int
    effective_cache_size_bytes: int
    maintenance_work_mem_bytes: int
    work_mem_bytes: int

    def server_settings(self) -> dict[str, str]:
        """postgresql.conf / `postgres -c` settings, units spelled the way PostgreSQL reads them."""
        return {
            "max_connections": str(self.max_connections),
            "superuser_reserved_connections": str(self.superuser_reserved_connections),
            "shared_buffers": f"{self.shared_buffers_bytes // KIB}kB",
            "effective_cache_size": f"{self.effective_cache_size_bytes // KIB}kB",
            "maintenance_work_mem": f"{self.maintenance_work_mem_bytes // KIB}kB",
            "work_mem": f"{self.work_mem_bytes // KIB}kB",
        }


def postgres_sizing(instance_class: str) -> PostgresSizing:
    """Apply the RDS PostgreSQL default parameter-group formulas to the class's nominal memory.

    AWS's DBInstanceClassMemory is a little below nominal memory (the OS reserve is excluded), so real
    instances report slightly fewer connections; nominal memory is the documented, reproducible figure.
    """
    cls = db_instance_class(instance_class)
    mem = cls.memory_bytes
    return PostgresSizing(
        instance_class=cls.name,
        vcpus=cls.vcpus,
        memory_bytes=mem,
        # LEAST({DBInstanceClassMemory/9531392}, 5000)
        max_connections=min(mem // 9531392, 5000),
        superuser_reserved_connections=3,
        # {DBInstanceClassMemory/32768} pages of 8 kB: a quarter of memory.
        shared_buffers_bytes=(mem // 32768) * PG_PAGE,
        # {DBInstanceClassMemory/16384} pages of 8 kB: half of memory.
        effective_cache_size_bytes=(mem // 16384) * PG_PAGE,
        # GREATEST({DBInstanceClassMemory*1024/63963136}, 65536) kB
        maintenance_work_mem_bytes=max(mem * 1024 // 63963136, 65536) * KIB,
        # RDS keeps PostgreSQL's default.
        work_mem_bytes=4 * MIB,
    )


@dataclass(frozen=True)
class RedisSizing:
    node_type: str
    vcpus: int
    memory_bytes: int
    reserved_memory_percent: int
    maxmemory_bytes: int
    maxmemory_policy: str

    def server_settings(self) -> dict[str, str]:
        return {"maxmemory": str(self.maxmemory_bytes), "maxmemory-policy": self.maxmemory_policy}


def redis_sizing(node_type: str, reserved_memory_percent: int = 25) -> RedisSizing:
    """ElastiCache defaults: 25 % reserved memory, volatile-lru (keys without a TTL are never evicted)."""
    node = cache_node_type(node_type)
    if not 0 <= reserved_memory_percent < 100:
        raise ValueError(f"reserved_memory_percent must be 0..99, got {reserved_memory_percent}")
    return RedisSizing(
        node_type=node.name,
        vcpus=node.vcpus,
        memory_bytes=node.memory_bytes,
        reserved_memory_percent=reserved_memory_percent,
        maxmemory_bytes=node.memory_bytes * (100 - reserved_memory_percent) // 100,
        maxmemory_policy="volatile-lru",
    )


@dataclass(frozen=True)
class ProxySizing:
    """RDS Proxy defaults mapped onto PgBouncer (transaction pooling is the nearest stand-in)."""

    max_connections_percent: int
    max_idle_connections_percent: int
    connection_borrow_timeout_s: int
    idle_client_timeout_s: int
    # Server connections the proxy may open: MaxConnectionsPercent of what non-superusers can use.
    pool_size: int
    max_client_connections: int

    def pgbouncer_settings(self) -> dict[str, str]:
        return {
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "max_db_connections": str(self.pool_size),
            # RDS Proxy keeps no warm floor of backends and trims idle ones (MaxIdleConnectionsPercent);
            # PgBouncer has no idle cap, so idle server connections are closed after a minute instead.
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "query_wait_timeout": str(self.connection_borrow_timeout_s),
            "client_idle_timeout": str(self.idle_client_timeout_s),
            "server_idle_timeout": "60",
            "max_client_conn": str(self.max_client_connections),
        }


def proxy_sizing(
    pg: PostgresSizing,
    max_connections_percent: int = 100,
    max_idle_connections_percent: int = 50,
    connection_borrow_timeout_s: int = 120,
    idle_client_timeout_s: int = 1800,
    max_client_connections: int = 2000,
) -> ProxySizing:
    usable = pg.max_connections - pg.superuser_reserved_connections
    pool = max(1, usable * max_connections_percent // 100)
    return ProxySizing(
        max_connections_percent=max_connections_percent,
        max_idle_connections_percent=max_idle_connections_percent,
        connection_borrow_timeout_s=connection_borrow_timeout_s,
        idle_client_timeout_s=idle_client_timeout_s,
        pool_size=pool,
        max_client_connections=max_client_connections,
    )


def lambda_vcpu_share(memory_mb: int) -> float:
    """Fraction of one vCPU a Lambda function of this memory size gets."""
    if memory_mb <= 0:
        raise ValueError(f"Lambda memory must be positive, got {memory_mb} MB")
    return memory_mb / LAMBDA_MB_PER_VCPU


@dataclass(frozen=True)
class UnitSizing:
    """The whole Database Unit: one named DB class, one cache node type, the Lambda memory sizes."""

    postgres: PostgresSizing
    proxy: ProxySizing
    redis: RedisSizing
    lambda_memory_mb: Mapping[str, int] = field(default_factory=dict)


def unit_sizing(
    db_instance_class_name: str, cache_node_type_name: str, lambda_memory_mb: Mapping[str, int] | None = None
) -> UnitSizing:
    """Sizing of the unit as Settings (fixtures/unit.yaml unless overridden) names it."""
    pg = postgres_sizing(db_instance_class_name)
    return UnitSizing(
        postgres=pg,
        proxy=proxy_sizing(pg),
        redis=redis_sizing(cache_node_type_name),
        lambda_memory_mb=dict(lambda_memory_mb or {}),
    )


# -- storage: the EBS volume under RDS ----------------------------------------------------------------

STORAGE_TYPES = ("gp2", "gp3")
GP2_IOPS_PER_GIB = 3
GP2_MIN_IOPS = 100
GP2_BURST_IOPS = 3000
# Every gp2 volume starts with, and refills up to, 5.4 million I/O credits (one credit = one I/O).
GP2_IO_CREDITS_MAX = 5_400_000
GP3_BASELINE_IOPS = 3000
GP3_BASELINE_MIB_S = 125
# gp2 throughput: 128 MiB/s up to 170 GiB, then 250 (RDS storage docs).
GP2_SMALL_VOLUME_MIB_S = 128


@dataclass(frozen=True)
class StorageSizing:
    """IOPS and throughput of the RDS data volume: baseline, and for gp2 the burst bucket."""

    storage_type: str
    allocated_gib: int
    baseline_iops: int
    burst_iops: int  # equal to baseline when the volume does not burst
    io_credits_max: int  # 0 when the volume does not burst
    throughput_bytes_s: int

    @property
    def bursts(self) -> bool:
        return self.burst_iops > self.baseline_iops and self.io_credits_max > 0

    def full_burst_s(self) -> float:
        """How long a full bucket lasts at full burst (credits drain at burst - baseline per second)."""
        if not self.bursts:
            return 0.0
        return self.io_credits_max / (self.burst_iops - self.baseline_iops)


def storage_sizing(storage_type: str, allocated_gib: int) -> StorageSizing:
    if storage_type not in STORAGE_TYPES:
        raise UnknownProfileError(f"unknown storage type {storage_type!r}; known: {', '.join(STORAGE_TYPES)}")
    if not 20 <= allocated_gib <= 65536:
        raise UnknownProfileError(f"allocated storage must be 20..65536 GiB (RDS's range), got {allocated_gib}")
    if storage_type == "gp3":
        return StorageSizing("gp3", allocated_gib, GP3_BASELINE_IOPS, GP3_BASELINE_IOPS, 0, GP3_BASELINE_MIB_S * MIB)
    baseline = min(max(GP2_IOPS_PER_GIB * allocated_gib, GP2_MIN_IOPS), 16000)
    # Volumes of 1,000 GiB and more have a baseline at or above the burst rate and never burst.
    burst = max(baseline, GP2_BURST_IOPS)
    credits = GP2_IO_CREDITS_MAX if burst > baseline else 0
    throughput = GP2_SMALL_VOLUME_MIB_S if allocated_gib <= 170 else 250
    return StorageSizing("gp2", allocated_gib, baseline, burst, credits, throughput * MIB)


@dataclass(frozen=True)
class DiskLimits:
    """What the data directory's disk is capped to: the volume's IOPS, and the tighter of the volume's
    and the instance link's throughput."""

    iops: int
    bytes_s: int


def disk_limits(storage: StorageSizing, link: EbsLink | None, bursting: bool) -> DiskLimits:
    if bursting:
        iops, bytes_s = storage.burst_iops, storage.throughput_bytes_s
        if link is not None:
            iops, bytes_s = min(iops, link.burst_iops), min(bytes_s, link.burst_bytes_s)
    else:
        iops, bytes_s = storage.baseline_iops, storage.throughput_bytes_s
        if link is not None:
            iops, bytes_s = min(iops, link.baseline_iops), min(bytes_s, link.baseline_bytes_s)
    return DiskLimits(iops, bytes_s)
