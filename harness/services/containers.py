"""A compose container's own accounting, read from the kernel: the CPU seconds and memory its cgroup has
charged, and the CPU and memory limits the kernel holds for it.

On the embedded stack the samplers add up a server's process tree; a container's processes live in another
PID namespace and come and go (every PostgreSQL connection is a backend), so the container's cgroup is the
account instead, as RDS bills its instance and not its processes: cumulative CPU (exited backends included),
and memory in use as `docker stats` counts it (usage less the inactive page cache the kernel reclaims first).
The engine names each container's cgroup in /proc/<pid>/cgroup of its main process; the files there are
readable by any account on the engine's host, so a user in the docker group needs no root. An engine on
another host (DOCKER_HOST over TCP) has no cgroup files here: the sources say so and nothing is measured.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.services.cgroups import CGROUP_ROOT, V1_UNLIMITED

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
DOCKER_TIMEOUT_S = 20


class ContainerUnreadable(RuntimeError):
    """A container's accounting cannot be read from here; the message says why."""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ContainerUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None


def _stat_field(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


@dataclass(frozen=True)
class ContainerUsage:
    """One container's cgroup: v2's single directory, or v1's cpuacct, cpu and memory directories."""

    service: str
    container_id: str
    version: str
    dirs: dict[str, Path]

    def cpu_seconds(self) -> float:
        """CPU the container has used since it started, every process it ever ran included."""
        if self.version == "v2":
            return _stat_field(_read(self.dirs["unified"] / "cpu.stat"), "usage_usec") / 1e6
        return int(_read(self.dirs["cpuacct"] / "cpuacct.usage")) / 1e9

    def memory_bytes(self) -> float:
        """Memory in use, as `docker stats` counts it: the cgroup's usage less its inactive file cache."""
        if self.version == "v2":
            group = self.dirs["unified"]
            used = int(_read(group / "memory.current"))
            inactive = _stat_field(_read(group / "memory.stat"), "inactive_file")
        else:
            group = self.dirs["memory"]
            used = int(_read(group / "memory.usage_in_bytes"))
            inactive = _stat_field(_read(group / "memory.stat"), "total_inactive_file")
        return float(max(0, used - inactive))

    def memory_limit_bytes(self) -> float | None:
        """The memory limit the kernel holds; None when unlimited."""
        if self.version == "v2":
            text = _read(self.dirs["unified"] / "memory.max").strip()
            return None if text == "max" else float(text)
        value = int(_read(self.dirs["memory"] / "memory.limit_in_bytes"))
        return None if value >= V1_UNLIMITED else float(value)

    def vcpus(self) -> float | None:
        """The CPU limit the kernel holds, in vCPUs (CFS quota over period); None when unlimited."""
        if self.version == "v2":
            quota, period = _read(self.dirs["unified"] / "cpu.max").split()
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int(_read(self.dirs["cpu"] / "cpu.cfs_quota_us"))
        period_us = int(_read(self.dirs["cpu"] / "cpu.cfs_period_us"))
        return None if quota_us < 0 else quota_us / period_us


def cgroup_dirs(pid: int, root: Path = CGROUP_ROOT) -> tuple[str, dict[str, Path]]:
    """("v1" | "v2", directories) of the cgroup a process is in, from /proc/<pid>/cgroup."""
    return parse_proc_cgroup(_read(Path(f"/proc/{pid}/cgroup")), root, f"process {pid}")


def parse_proc_cgroup(text: str, root: Path, who: str) -> tuple[str, dict[str, Path]]:
    """A /proc/<pid>/cgroup file's groups under `root`: v1's cpu, cpuacct and memory directories where the
    host mounts those hierarchies (a hybrid host's unified line is then only systemd's), else v2's one."""
    v1: dict[str, Path] = {}
    unified = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            unified = path
        for controller in controllers.split(","):
            if controller in ("cpu", "cpuacct", "memory"):
                v1[controller] = root / controller / path.lstrip("/")
    if {"cpu", "cpuacct", "memory"} <= set(v1):
        return "v1", v1
    if unified is not None and (root / "cgroup.controllers").exists():
        return "v2", {"unified": root / unified.lstrip("/")}
    raise ContainerUnreadable(f"{who} is in no cgroup v2 group nor v1 cpu, cpuacct and memory groups")


def _docker(docker: str, *args: str) -> str:
    try:
        done = subprocess.run(
            [docker, *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ContainerUnreadable(f"`docker {args[0]}` failed: {exc}") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise ContainerUnreadable(f"`docker {args[0]}` failed (exit {done.returncode}): {first}")
    return done.stdout


def _docker_cli() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise ContainerUnreadable("no `docker` command on PATH to find the compose project's containers")
    return docker


def cpu_shares(container_id: str) -> int:
    """The container's CPU weight against the host's other groups (the engine's --cpu-shares; 1024 unless set)."""
    return int(_docker(_docker_cli(), "inspect", "--format", "{{.HostConfig.CpuShares}}", container_id)) or 1024


def set_cpu_shares(container_id: str, shares: int) -> None:
    """Change the container's CPU weight through the engine (no root needed); its CPU limit stays."""
    _docker(_docker_cli(), "update", "--cpu-shares", str(shares), container_id)


def compose_containers(project: str) -> dict[str, ContainerUsage]:
    """The running containers of a compose project by service name, each with its cgroup."""
    docker = _docker_cli()
    ids = _docker(docker, "ps", "--quiet", "--no-trunc", "--filter", f"label={COMPOSE_PROJECT_LABEL}={project}").split()
    if not ids:
        raise ContainerUnreadable(f"compose project {project} has no running container")
    template = f'{{{{.Id}}}} {{{{.State.Pid}}}} {{{{index .Config.Labels "{COMPOSE_SERVICE_LABEL}"}}}}'
    found = {}
    for line in _docker(docker, "inspect", "--format", template, *ids).splitlines():
        container_id, pid, service = line.split()
        version, dirs = cgroup_dirs(int(pid))
        found[service] = ContainerUsage(service, container_id, version, dirs)
    return found
