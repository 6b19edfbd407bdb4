"""The embedded backend: every service as a local process on 127.0.0.1, state under one directory."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, Reporter, ServiceStatus, StackStatus
from harness.config import Settings
from harness.endpoints import (
    AwsEndpoint,
    Secret,
    StackEndpoints,
    TlsFiles,
    endpoints_path,
    load_endpoints,
    save_endpoints,
    write_private_file,
)
from harness.services import wal_archive as wal_archive_module
from harness.services.aws import AwsEmulatorService, checkpoint, create_backup_buckets, create_unit_resources
from harness.services.certificates import ensure_certificates, tls_facts, tls_files
from harness.services.cgroups import (
    BURSTABLE_CPU_PERIOD_US,
    CPU_PERIOD_US,
    CgroupLimiter,
    CgroupStatus,
    block_device_of,
)
from harness.services.lambda_server import LambdaRuntimeService
from harness.services.osuser import ServerUser, server_user
from harness.services.pgbouncer import PgBouncerService
from harness.services.postgres import INITIALISED_MARKER, PostgresService
from harness.services.process import LocalService, PidFiles, ServiceError, kill_group, port_is_free, stop_process
from harness.services.redis import RedisService
from harness.services.wal_archive import ARCHIVE_CONFIG, ArchiveConfig, archive_settings
from harness.sizing import DiskLimits, cache_node_type, db_instance_class, disk_limits, storage_sizing, unit_sizing

SECRETS_FILE = "secrets.json"
# Where `harness backup restore` puts new instances (harness/backup/restore.py); down stops them by PID.
RESTORES_DIR = "restores"
# Start order; stop order is the reverse.
SERVICE_NAMES = ("postgres", "pgbouncer", "redis", "aws", "lambda")
TLS_DIR = "tls"
DIRECT_PLAIN = (
    "plain TCP on 127.0.0.1 only: the embedded PostgreSQL build has no OpenSSL (on RDS, rds.force_ssl=1 "
    "requires TLS here too): NOT EMULATED"
)
SERVICE_PORTS = {
    "postgres": "postgres_port",
    "pgbouncer": "proxy_port",
    "redis": "redis_port",
    "aws": "aws_port",
    "lambda": "lambda_port",
}


class EmbeddedBackend(Backend):
    name = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_dir
        self.sizing = unit_sizing(settings.db_instance_class, settings.cache_node_type, settings.unit.lambda_memory_mb)
        self.pids = PidFiles(self.state / "run")
        digest = hashlib.sha1(str(self.state).encode()).hexdigest()[:10]
        self.cgroup = CgroupLimiter(f"dbunit-harness-{digest}-postgres") if settings.cgroups != "off" else None
        self.redis_cgroup = CgroupLimiter(f"dbunit-harness-{digest}-redis") if settings.cgroups != "off" else None
        self.storage = storage_sizing(settings.storage_type, settings.allocated_storage_gib)
        self.lambda_cgroup_prefix = f"dbunit-harness-{digest}-lambda"

    # -- state -------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "lock", "w") as handle:
            # Two `harness up` at once would race for the same ports and data directory.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _secrets(self, create: bool) -> dict[str, Secret]:
        path = self.state / SECRETS_FILE
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                return {key: Secret(raw[key]) for key in ("master_password", "redis_password")}
            except (ValueError, KeyError) as exc:
                raise ServiceError(
                    f"{path} is damaged ({exc}); remove the state directory with `harness down --purge`"
                ) from None
        if not create:
            raise ServiceError(f"no {path}: the embedded stack was never started in {self.state}")
        if (self.state / "postgres" / "data" / INITIALISED_MARKER).exists():
            raise ServiceError(
                f"{path} is missing but {self.state}/postgres/data holds an initialised cluster whose password "
                "it recorded; remove the state with `harness down --purge` and start again"
            )
        raw = {"master_password": secrets.token_urlsafe(24), "redis_password": secrets.token_urlsafe(24)}
        write_private_file(path, json.dumps(raw))
        return {key: Secret(value) for key, value in raw.items()}

    def _tls_files(self, create: bool) -> TlsFiles | None:
        if self.settings.tls == "off":
            return None
        if not create:
            return tls_files(self.state / TLS_DIR)
        files = ensure_certificates(self.state / TLS_DIR)
        # PgBouncer and Redis read the key as the server account; nobody else may.
        server_user(self.settings.postgres_os_user).own(files.key)
        return files

    def local_services(
        self, creds: dict[str, Secret], tls: TlsFiles | None = None
    ) -> tuple[PostgresService, PgBouncerService, RedisService, AwsEmulatorService, LambdaRuntimeService]:
        """The five local services this backend runs, as its settings configure them (nothing is started)."""
        s = self.settings
        user = server_user(s.postgres_os_user)
        if tls is None:
            tls = self._tls_files(create=False)
        logs = self.state / "logs"
        postgres = PostgresService(
            data_dir=self.state / "postgres" / "data",
            log_path=logs / "postgres.log",
            port=s.postgres_port,
            database=s.database,
            master_user=s.master_user,
            master_password=creds["master_password"],
            sizing=self.sizing.postgres,
            user=user,
            pids=self.pids,
            cgroup=self.cgroup,
            disk=self.postgres_disk_limits(),
            cold_start=s.cpu_credits == "drained",
            timeout_s=s.startup_timeout_s,
            extra_settings=archive_settings(self.archive_config_path),
        )
        pgbouncer = PgBouncerService(
            conf_dir=self.state / "pgbouncer",
            log_path=logs / "pgbouncer.log",
            port=s.proxy_port,
            upstream_port=s.postgres_port,
            database=s.database,
            master_user=s.master_user,
            master_password=creds["master_password"],
            sizing=self.sizing.proxy,
            user=user,
            tls_mode=s.tls,
            tls_files=tls,
            pids=self.pids,
            timeout_s=s.startup_timeout_s,
        )
        redis = RedisService(
            work_dir=self.state / "redis",
            log_path=logs / "redis.log",
            port=s.redis_port,
            password=creds["redis_password"],
            sizing=self.sizing.redis,
            user=user,
            tls_mode=s.tls,
            tls_files=tls,
            pids=self.pids,
            cgroup=self.redis_cgroup,
            cpu_vcpus=self.cache_start_vcpus(),
            cpu_period_us=BURSTABLE_CPU_PERIOD_US if cache_node_type(s.cache_node_type).credits else CPU_PERIOD_US,
            timeout_s=s.startup_timeout_s,
        )
        aws = AwsEmulatorService(
            work_dir=self.state / "aws",
            log_path=logs / "aws.log",
            port=s.aws_port,
            region=s.region,
            pids=self.pids,
            timeout_s=s.startup_timeout_s,
        )
        lambda_runtime = LambdaRuntimeService(
            state_dir=self.state / "lambda",
            log_path=logs / "lambda.log",
            port=s.lambda_port,
            aws=aws.endpoint(),
            concurrency=s.lambda_concurrency,
            cgroups=s.cgroups,
            cgroup_prefix=self.lambda_cgroup_prefix,
            run_as=s.postgres_os_user,
            pids=self.pids,
            timeout_s=s.startup_timeout_s,
        )
        return postgres, pgbouncer, redis, aws, lambda_runtime

    def cache_start_vcpus(self) -> float:
        """A drained standard-mode node starts at its baseline; otherwise (live: rested, off) at its vCPUs."""
        node = cache_node_type(self.settings.cache_node_type)
        if self.settings.cpu_credits == "drained" and node.credits is not None and node.credits.mode == "standard":
            return node.credits.baseline_vcpus
        return float(node.vcpus)

    def postgres_disk_limits(self) -> DiskLimits | None:
        """The volume's and instance link's caps PostgreSQL's disk runs under (None: cpu_credits = off)."""
        if self.settings.cpu_credits == "off":
            return None
        link = db_instance_class(self.settings.db_instance_class).ebs
        return disk_limits(self.storage, link, bursting=self.settings.cpu_credits == "live")

    def credit_facts(self, postgres: PostgresService, redis: RedisService) -> dict[str, Any]:
        """What the samplers need to keep the credit ledgers (and, live, to move the caps), and what
        status and reports say about enforcement."""
        mode = self.settings.cpu_credits
        redis_record = redis.record()
        cache_capped = (
            self.redis_cgroup is not None and redis_record is not None and self.redis_cgroup.contains(redis_record.pid)
        )
        db_capped = self._cgroup_status(postgres).enforced
        if mode == "off":
            enforced, detail = False, "cpu_credits = off: ledgers modelled from measured CPU, caps not moved"
        elif cache_capped and db_capped:
            enforced, detail = True, f"cpu_credits = {mode}: cache node and RDS in their own cgroups"
        else:
            enforced = False
            if self.redis_cgroup is None:
                why = "cgroups = off in configuration"
            elif not self.redis_cgroup.detect()[0]:
                why = self.redis_cgroup.detect()[1]
            else:
                why = "the cache node is not in its cgroup" if not cache_capped else "PostgreSQL is not in its cgroup"
            detail = f"credits NOT enforced: {why}; the ledgers are still modelled from measured CPU"
        storage: dict[str, Any] = {
            "type": self.storage.storage_type,
            "allocated_gib": self.storage.allocated_gib,
            "baseline_iops": self.storage.baseline_iops,
            "burst_iops": self.storage.burst_iops,
            "io_credits_max": self.storage.io_credits_max,
        }
        # Read back from the kernel: what holds, not what was asked for.
        limits = {}
        if db_capped and self.cgroup is not None and postgres.data_dir.exists():
            storage["device"] = block_device_of(postgres.data_dir)
            limits = self.cgroup.io_limits(storage["device"])
        storage["capped_read_iops"] = limits.get("read_iops")
        storage["capped_read_bytes_s"] = limits.get("read_bps")
        if mode == "off":
            storage["detail"] = "cpu_credits = off: disk not capped"
        elif limits.get("read_iops"):
            storage["detail"] = (
                "reads, direct I/O and writes PostgreSQL fsyncs itself capped in its cgroup; writeback by the "
                "kernel's flusher is NOT throttled (cgroup v1 does not charge it to the group)"
            )
        elif not db_capped:
            storage["detail"] = "storage NOT capped: PostgreSQL is not running in its cgroup"
        else:
            storage["detail"] = "storage NOT capped: no writable blkio controller for the PostgreSQL group"
        return {
            "mode": mode,
            # Where a live ledger starts when none was saved (None: rested, its maximum balance).
            "start_balance": self.settings.cpu_credit_start_balance,
            "enforced": enforced,
            "detail": detail,
            "redis_cgroup": self.redis_cgroup.name if cache_capped and self.redis_cgroup else None,
            "postgres_cgroup": self.cgroup.name if db_capped and self.cgroup else None,
            "storage": storage,
        }

    def _cgroup_status(self, postgres: PostgresService) -> CgroupStatus:
        if self.cgroup is None:
            return CgroupStatus(False, "", None, None, "cgroups = off in configuration")
        record = postgres.record()
        if record is not None and self.cgroup.contains(record.pid):
            return CgroupStatus(
                True,
                self.cgroup.detect()[0],
                self.sizing.postgres.memory_bytes,
                float(self.sizing.postgres.vcpus),
                self.cgroup.name,
            )
        return CgroupStatus(False, "", None, None, self.cgroup.detect()[1] if record else "PostgreSQL is not running")

    @property
    def archive_config_path(self) -> Path:
        return self.state / "postgres" / ARCHIVE_CONFIG

    def _configure_archive(self, aws: AwsEndpoint, kms_key_id: str, user: ServerUser) -> None:
        """Create the backup buckets and tell PostgreSQL's archive_command where to put WAL."""
        primary, _ = create_backup_buckets(aws, self.settings.backup_copy_region)
        config = ArchiveConfig(
            url=aws.url,
            region=aws.region,
            access_key_id=aws.access_key_id,
            secret_access_key=aws.secret_access_key.reveal(),
            bucket=primary,
            kms_key_id=kms_key_id,
        )
        config.save(self.archive_config_path)
        user.own(self.archive_config_path)
        # archive_command runs this interpreter and module as the server's account.
        user.make_traversable(Path(wal_archive_module.__file__).resolve())

    # -- lifecycle ---------------------------------------------------------------------------------

    def up(self, report: Reporter) -> StackEndpoints:
        with self._locked():
            creds = self._secrets(create=True)
            running = [name for name in ("pgbouncer", "redis") if (r := self.pids.read(name)) and r.is_alive()]
            tls = self._tls_files(create=not running)
            postgres, pgbouncer, redis, aws, lambda_runtime = self.local_services(creds, tls)
            started: list[LocalService] = []
            try:
                in_order = (postgres, pgbouncer, redis, aws, lambda_runtime)
                for label, service in zip(SERVICE_NAMES, in_order, strict=True):
                    if service.is_running():
                        report(f"{label}: already running")
                        continue
                    # A record for a dead process is what a crash leaves; the service starts afresh.
                    self.pids.remove(label)
                    began = time.monotonic()
                    service.start()
                    started.append(service)
                    report(f"{label}: ready in {time.monotonic() - began:.1f} s")
                cgroup = self._cgroup_status(postgres)
                if self.settings.cgroups == "require" and not cgroup.enforced:
                    raise ServiceError(f"cgroups = require, but PostgreSQL is not capped: {cgroup.reason}")
                resources = create_unit_resources(aws.endpoint(), pgbouncer.endpoint())
                self._configure_archive(aws.endpoint(), resources.kms_key_id, user=postgres.user)
                checkpoint(aws.endpoint())
                endpoints = StackEndpoints(
                    backend=self.name,
                    proxy=pgbouncer.endpoint(),
                    direct=dataclasses.replace(postgres.endpoint(), sslmode="disable"),
                    redis=redis.endpoint(),
                    aws=dataclasses.replace(aws.endpoint(), lambda_url=lambda_runtime.url),
                    resources=resources,
                    facts={
                        "postgres": postgres.facts(),
                        "proxy": pgbouncer.facts(),
                        "redis": redis.facts(),
                        "aws": aws.facts(),
                        "lambda": lambda_runtime.facts(),
                        "cgroup": cgroup.as_dict(),
                        "credits": self.credit_facts(postgres, redis),
                        "tls": self._tls_facts(tls),
                        "machine_cores": os.cpu_count(),
                        "state_dir": str(self.state),
                    },
                )
                save_endpoints(self.state, endpoints)
                return endpoints
            except BaseException:
                # Leave nothing half-started: stop what this call started, newest first.
                for service in reversed(started):
                    service.stop()
                raise

    def _tls_facts(self, tls: TlsFiles | None) -> dict[str, Any]:
        return tls_facts(self.settings.tls, tls, DIRECT_PLAIN)

    def can_restart(self, service: str) -> bool:
        return service in SERVICE_NAMES

    def restart(self, service: str, report: Reporter) -> None:
        """Stop one service and start it again on the same state (a fault drill)."""
        if service not in SERVICE_NAMES:
            raise ServiceError(f"unknown service {service!r}; the embedded stack has {', '.join(SERVICE_NAMES)}")
        with self._locked():
            target = dict(zip(SERVICE_NAMES, self.local_services(self._secrets(create=False)), strict=True))[service]
            began = time.monotonic()
            target.stop()
            target.start()
            report(f"{service}: restarted in {time.monotonic() - began:.1f} s")

    def restart_with_credits(self, mode: str, report: Reporter) -> StackEndpoints:
        """PostgreSQL, PgBouncer and Redis stopped and started again as `mode` starts them (drained: the data
        evicted from the page cache, disk at the volume's baseline, the cache node at its CPU baseline), and
        the endpoint file's facts rewritten, so samplers and reports see the mode in force. Redis comes
        back empty, as a restarted node does; the emulator and the Lambda runtime keep running."""
        current = self.endpoints()
        if current is None:
            raise ServiceError(f"the embedded stack in {self.state} is not up: run `harness up` first")
        switched = EmbeddedBackend(dataclasses.replace(self.settings, cpu_credits=mode))
        with self._locked():
            postgres, pgbouncer, redis, _, _ = switched.local_services(switched._secrets(create=False))
            began = time.monotonic()
            # The proxy first: restarted after PostgreSQL it connects at once, where a running PgBouncer
            # that lost its server waits server_login_retry (15 s) before trying again.
            for service in (pgbouncer, postgres, redis):
                service.stop()
            for service in (postgres, pgbouncer, redis):
                service.start()
            facts = {
                **current.facts,
                "postgres": postgres.facts(),
                "redis": redis.facts(),
                "cgroup": switched._cgroup_status(postgres).as_dict(),
                "credits": switched.credit_facts(postgres, redis),
            }
            endpoints = dataclasses.replace(current, facts=facts)
            save_endpoints(self.state, endpoints)
        report(
            f"database, proxy and cache node restarted with cpu_credits = {mode} in {time.monotonic() - began:.1f} s"
        )
        return endpoints

    def kill(self, service: str, report: Reporter) -> None:
        """SIGKILL the service's main process (PostgreSQL: the postmaster) and wait until it and the children
        it leaves are gone, so that `up()` can start it again on the same state."""
        if service not in SERVICE_NAMES:
            raise ServiceError(f"unknown service {service!r}; the embedded stack has {', '.join(SERVICE_NAMES)}")
        record = self.pids.read(service)
        if record is None or not record.is_alive():
            raise ServiceError(f"{service} is not running; start the stack with `harness up`")
        os.kill(record.pid, signal.SIGKILL)
        # PostgreSQL's backends notice their postmaster's death and exit; whatever lingers goes with the group.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and record.is_alive():
            time.sleep(0.02)
        kill_group(record.pid)
        # The kernel frees a killed listener's port a moment later; `up()` would find it busy before then.
        port = getattr(self.settings, SERVICE_PORTS[service])
        while time.monotonic() < deadline and not port_is_free(port):
            time.sleep(0.05)
        report(f"{service}: killed (SIGKILL to PID {record.pid})")

    def down(self, report: Reporter, purge: bool = False) -> None:
        with self._locked():
            endpoints_path(self.state).unlink(missing_ok=True)
            creds = self._secrets(create=False) if (self.state / SECRETS_FILE).exists() else None
            if creds is not None:
                services: list[tuple[str, LocalService]] = list(
                    zip(SERVICE_NAMES, self.local_services(creds), strict=True)
                )
                # The emulator goes last: PostgreSQL's shutdown archives its last WAL segment to it.
                in_order = sorted(reversed(services), key=lambda pair: pair[0] == "aws")
                for label, service in in_order:
                    if service.stop():
                        report(f"{label}: stopped")
            # Restored instances (harness backup restore) and whatever else a record names (a crash between
            # start and bookkeeping) go too.
            for run_dir in sorted((self.state / RESTORES_DIR).glob("*/run")):
                for record in PidFiles(run_dir).all():
                    if stop_process(record, sig=signal.SIGINT, timeout_s=30):
                        report(f"restored instance {run_dir.parent.name}: stopped (PID {record.pid})")
                    PidFiles(run_dir).remove(record.name)
            for record in self.pids.all():
                if stop_process(record):
                    report(f"{record.name}: stopped (PID {record.pid})")
                self.pids.remove(record.name)
            for group in (self.cgroup, self.redis_cgroup):
                if group is not None:
                    group.remove()
        if purge:
            shutil.rmtree(self.state, ignore_errors=True)
            report(f"removed {self.state}")

    def endpoints(self) -> StackEndpoints | None:
        return load_endpoints(self.state)

    @contextmanager
    def database_memory_raised(self, memory_bytes: int) -> Iterator[str]:
        group = self.cgroup
        record = self.pids.read("postgres")
        if group is None or record is None or not group.contains(record.pid):
            yield "PostgreSQL is not in a memory cgroup here: the build ran uncapped"
            return
        before = group.memory_limit()
        group.set_memory_limit(memory_bytes)
        try:
            yield (
                f"PostgreSQL's memory cap raised from {'none' if before is None else f'{before // 2**20} MiB'} "
                f"to {memory_bytes // 2**20} MiB for the build (NOT within the instance's memory)"
            )
        finally:
            # The kernel keeps the raised cap when it cannot reclaim down to the old one; a restart applies
            # the class's cap again (the capacity sweep restarts before measuring).
            if before is not None:
                with contextlib.suppress(OSError):
                    group.set_memory_limit(before)

    def status(self) -> StackStatus:
        path = self.state / SECRETS_FILE
        if not path.exists():
            return StackStatus(self.name, [], {"state_dir": str(self.state), "note": "never started here"})
        tls = self._tls_files(create=False)
        postgres, pgbouncer, redis, aws, lambda_runtime = self.local_services(self._secrets(create=False), tls)
        sizing = self.sizing
        rows = [
            _probe_row(
                "postgres",
                postgres,
                postgres.endpoint().url(),
                postgres.facts,
                lambda f: (
                    f"{f['instance_class']}: max_connections={f['max_connections']} "
                    f"shared_buffers={f['shared_buffers']} pgvector {f['pgvector_version']}"
                ),
            ),
            _probe_row(
                "proxy (pgbouncer)",
                pgbouncer,
                pgbouncer.endpoint().url(),
                pgbouncer.facts,
                lambda f: f"transaction pooling, pool {f['pool_size']}, wait timeout {f['query_wait_timeout_s']} s",
            ),
            _probe_row(
                "redis",
                redis,
                redis.endpoint().url(),
                redis.facts,
                lambda f: f"{f['node_type']}: maxmemory={f['maxmemory']} {f['maxmemory_policy']}",
            ),
            _probe_row("aws (ministack)", aws, aws.url, aws.facts, lambda f: f"region {f['region']}"),
            _probe_row(
                "lambda (local runtime)",
                lambda_runtime,
                lambda_runtime.url,
                lambda_runtime.facts,
                lambda f: (
                    f"concurrency {f['concurrency_limit']}, "
                    + ("memory+CPU capped per environment" if f["cgroups"]["enforced"] else "NOT capped (CPU reported)")
                ),
            ),
        ]
        cgroup = self._cgroup_status(postgres)
        facts = {
            "state_dir": str(self.state),
            "cgroup": cgroup.as_dict(),
            "credits": self.credit_facts(postgres, redis),
            "tls": self._tls_facts(tls if tls is not None and tls.cert.is_file() else None),
            "lambda_memory_mb": dict(sizing.lambda_memory_mb),
        }
        return StackStatus(self.name, rows, facts)


def _probe_row(name: str, service: Any, endpoint: str, facts: Any, describe: Any) -> ServiceStatus:
    record = service.record()
    pid = record.pid if record else None
    if not service.is_running():
        return ServiceStatus(name, endpoint, False, detail="not running", pid=pid)
    try:
        found = facts()
    except Exception as exc:
        return ServiceStatus(name, endpoint, False, detail=f"probe failed: {exc}", pid=pid, running=True)
    return ServiceStatus(
        name, endpoint, True, version=str(found.get("version", "")), sizing=describe(found), pid=pid, running=True
    )
