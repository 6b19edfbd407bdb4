"""Debian's redis-server in the foreground, sized and configured like an ElastiCache cache.t3.micro."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.endpoints import RedisEndpoint, Secret, TlsFiles
from harness.services.cgroups import CPU_PERIOD_US, CgroupLimiter, CgroupStatus
from harness.services.osuser import ServerUser
from harness.services.process import (
    LocalService,
    ensure_port_free,
    find_binary,
    spawn,
    wait_until_ready,
)
from harness.sizing import RedisSizing

NAME = "redis"
INSTALL_HINT = "Install Debian's package: `apt-get install redis-server` (make up does this when run as root)."
# The commands ElastiCache (Redis OSS) restricts "to deliver a managed service experience" (ElastiCache docs,
# "Restricted Redis OSS commands"): disabled here by renaming them to nothing, so a client gets
# "unknown command" as it would from ElastiCache. Server settings are read from INFO instead.
ELASTICACHE_RESTRICTED_COMMANDS = (
    "BGREWRITEAOF",
    "BGSAVE",
    "CONFIG",
    "DEBUG",
    "MIGRATE",
    "PSYNC",
    "REPLICAOF",
    "SAVE",
    "SLAVEOF",
    "SHUTDOWN",
    "SYNC",
)


def uses_tls(tls_mode: str, files: TlsFiles | None) -> bool:
    """Only "required" serves TLS: one Redis 7 port cannot serve TLS and plain (ElastiCache's "preferred")."""
    return tls_mode == "required" and files is not None


def listener_settings(port: int, files: TlsFiles | None) -> dict[str, str]:
    """redis.conf's listener lines: plain on `port`, or TLS only on it when `files` (as the server sees them)."""
    if files is None:
        return {"port": str(port)}
    return {
        "port": "0",
        "tls-port": str(port),
        "tls-cert-file": str(files.cert),
        "tls-key-file": str(files.key),
        "tls-ca-cert-file": str(files.ca),
        # ElastiCache does not ask clients for certificates; the password authenticates them.
        "tls-auth-clients": "no",
        "tls-protocols": '"TLSv1.2 TLSv1.3"',
    }


@dataclass(kw_only=True)
class RedisService(LocalService):
    name: ClassVar[str] = NAME
    work_dir: Path
    password: Secret
    sizing: RedisSizing
    user: ServerUser
    # The node's memory and the CPU it may use at start (its vCPUs, or its credit baseline when drained).
    cgroup: CgroupLimiter | None = None
    cpu_vcpus: float = 2.0
    cpu_period_us: int = CPU_PERIOD_US
    # "required": only a TLS port (ElastiCache in-transit encryption); "optional" and "off": plain, because
    # one Redis 7.0 port cannot serve both (ElastiCache's "preferred" mode is NOT EMULATED).
    tls_mode: str = "off"
    tls_files: TlsFiles | None = None

    @property
    def uses_tls(self) -> bool:
        return uses_tls(self.tls_mode, self.tls_files)

    def endpoint(self) -> RedisEndpoint:
        if not self.uses_tls or self.tls_files is None:
            return RedisEndpoint(self.host, self.port, self.password)
        return RedisEndpoint(self.host, self.port, self.password, tls=True, ca_file=str(self.tls_files.ca))

    def listener_settings(self) -> dict[str, str]:
        return listener_settings(self.port, self.tls_files if self.uses_tls else None)

    def _write_config(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.user.own(self.work_dir)
        settings = {
            "bind": self.host,
            **self.listener_settings(),
            "protected-mode": "yes",
            "daemonize": "no",
            "dir": str(self.work_dir),
            "logfile": '""',
            # ElastiCache without a backup window: no RDB snapshots, no AOF.
            "save": '""',
            "appendonly": "no",
            **self.sizing.server_settings(),
        }
        conf = self.work_dir / "redis.conf"
        # The password lives in the 0600 file, not on the command line where `ps` would show it.
        conf.write_text(
            "# Written by the harness from the cache node profile; edits are overwritten.\n"
            + "".join(f"{key} {value}\n" for key, value in settings.items())
            + f'requirepass "{self.password.reveal()}"\n'
            + "".join(f'rename-command {command} ""\n' for command in ELASTICACHE_RESTRICTED_COMMANDS)
        )
        conf.chmod(0o600)
        self.user.own(conf)
        return conf

    def _probe(self) -> dict[str, Any]:
        client = self.endpoint().client(socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
            return dict(client.info("server"))
        finally:
            client.close()

    def start(self) -> CgroupStatus:
        binary = find_binary("redis-server", INSTALL_HINT)
        ensure_port_free(self.port, "Redis", "redis_port")
        conf = self._write_config()
        status = CgroupStatus(False, "", None, None, "cgroups disabled by configuration")
        hooks = []
        if self.cgroup is not None:
            status, join = self.cgroup.apply(self.sizing.memory_bytes, self.cpu_vcpus, self.cpu_period_us)
            if join is not None:
                hooks.append(join)
        record = spawn(NAME, [str(binary), str(conf)], self.log_path, preexec=self.user.preexec(hooks))
        self.pids.write(record)
        wait_until_ready(record, self._probe, timeout_s=self.timeout_s, log_path=self.log_path, what="Redis")
        return status

    def stop(self) -> bool:
        stopped = super().stop()
        if self.cgroup is not None:
            self.cgroup.remove()
        return stopped

    def facts(self) -> dict[str, Any]:
        client = self.endpoint().client()
        try:
            server = client.info("server")
            memory = client.info("memory")
        finally:
            client.close()
        return {
            "version": server["redis_version"],
            "node_type": self.sizing.node_type,
            "vcpus": self.sizing.vcpus,
            "maxmemory": int(memory["maxmemory"]),
            "maxmemory_policy": memory["maxmemory_policy"],
            "tls": "required" if self.uses_tls else "off",
            "restricted_commands": list(ELASTICACHE_RESTRICTED_COMMANDS),
        }
