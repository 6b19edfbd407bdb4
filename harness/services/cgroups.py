"""Memory and CPU caps for a local process tree, where the machine lets us set them.

A db.t3.micro has 1 GiB and 2 vCPU; without a cap PostgreSQL on a developer machine would use the
page cache and cores of the whole host and look far faster than RDS. Writable cgroup v1 hierarchies
(memory, cpu) and a delegated cgroup v2 tree are supported; anywhere else the limiter says why not
and the stack runs uncapped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupStatus:
    enforced: bool
    version: str  # "v1", "v2" or "" when not enforced
    memory_limit_bytes: int | None
    cpu_limit_vcpus: float | None
    reason: str  # why not enforced, or where the group lives

    def as_dict(self) -> dict[str, object]:
        return {
            "enforced": self.enforced,
            "version": self.version,
            "memory_limit_bytes": self.memory_limit_bytes,
            "cpu_limit_vcpus": self.cpu_limit_vcpus,
            "detail": self.reason,
        }


class CgroupLimiter:
    """One named group capping memory and CPU; `join` is a hook for the child before it execs."""

    def __init__(self, name: str, root: Path = CGROUP_ROOT) -> None:
        if "/" in name or not name:
            raise ValueError(f"cgroup name must be one path component, got {name!r}")
        self.name = name
        self.root = root

    def _v1_dirs(self) -> dict[str, Path]:
        return {ctl: self.root / ctl / self.name for ctl in ("memory", "cpu")}

    def _v2_dir(self) -> Path:
        return self.root / self.name

    def detect(self) -> tuple[str, str]:
        """("v1" | "v2" | "", reason)."""
        if (self.root / "memory" / "memory.limit_in_bytes").exists() and (
            self.root / "cpu" / "cpu.cfs_quota_us"
        ).exists():
            if os.access(self.root / "memory", os.W_OK) and os.access(self.root / "cpu", os.W_OK):
                return "v1", "cgroup v1 memory and cpu hierarchies are writable"
            return "", "cgroup v1 hierarchies exist but are not writable (run as root, or delegate them)"
        controllers = self.root / "cgroup.controllers"
        if controllers.exists():
            available = controllers.read_text().split()
            if not {"memory", "cpu"} <= set(available):
                return (
                    "",
                    f"cgroup v2 lacks the memory/cpu controllers here (has: {' '.join(available) or 'none'})",
                )
            if not os.access(self.root, os.W_OK):
                return "", "cgroup v2 tree is not delegated to this user (not writable)"
            return "v2", "cgroup v2 tree is writable"
        return "", "no cgroup filesystem at /sys/fs/cgroup"

    def apply(self, memory_bytes: int, vcpus: float) -> tuple[CgroupStatus, Callable[[], None] | None]:
        version, reason = self.detect()
        if not version:
            return CgroupStatus(False, "", None, None, reason), None
        quota = int(vcpus * CPU_PERIOD_US)
        try:
            if version == "v1":
                dirs = self._v1_dirs()
                for directory in dirs.values():
                    directory.mkdir(parents=True, exist_ok=True)
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
                procs = [d / "cgroup.procs" for d in dirs.values()]
                where = ", ".join(str(d) for d in dirs.values())
            else:
                directory = self._v2_dir()
                # A child gets the memory/cpu files only once its parent delegates those controllers.
                (self.root / "cgroup.subtree_control").write_text("+memory +cpu")
                directory.mkdir(exist_ok=True)
                (directory / "memory.max").write_text(str(memory_bytes))
                (directory / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
                procs = [directory / "cgroup.procs"]
                where = str(directory)
        except OSError as exc:
            self.remove()
            return CgroupStatus(False, "", None, None, f"could not configure cgroup {self.name}: {exc}"), None

        def join() -> None:
            pid = str(os.getpid())
            for path in procs:
                with open(path, "w") as handle:
                    handle.write(pid)

        return CgroupStatus(True, version, memory_bytes, vcpus, where), join

    def contains(self, pid: int) -> bool:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return False
        return any(line.rstrip().endswith("/" + self.name) for line in lines)

    def exists(self) -> bool:
        return any(directory.exists() for directory in [*self._v1_dirs().values(), self._v2_dir()])

    def remove(self) -> None:
        """Remove the group's directories; the kernel refuses while a process is still in them."""
        for directory in [*self._v1_dirs().values(), self._v2_dir()]:
            with contextlib.suppress(OSError):
                directory.rmdir()

    # -- live adjustments and readings of a configured group (the Lambda runtime uses these) ---------

    def set_cpu_limit(self, vcpus: float | None) -> None:
        """Change the CPU cap of the group `apply` configured; None lifts it."""
        version, _ = self.detect()
        if version == "v1":
            quota = -1 if vcpus is None else max(1000, int(vcpus * CPU_PERIOD_US))
            (self._v1_dirs()["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        elif version == "v2":
            quota_text = "max" if vcpus is None else str(max(1000, int(vcpus * CPU_PERIOD_US)))
            (self._v2_dir() / "cpu.max").write_text(f"{quota_text} {CPU_PERIOD_US}")

    def reset_memory_peak(self) -> bool:
        """Start a new peak measurement; False where the kernel cannot (cgroup v2 before Linux 6.12)."""
        version, _ = self.detect()
        try:
            if version == "v1":
                (self._v1_dirs()["memory"] / "memory.max_usage_in_bytes").write_text("0")
                return True
            if version == "v2":
                (self._v2_dir() / "memory.peak").write_text("reset")
                return True
        except OSError:
            return False
        return False

    def memory_peak_bytes(self) -> int | None:
        version, _ = self.detect()
        path = {
            "v1": self._v1_dirs()["memory"] / "memory.max_usage_in_bytes",
            "v2": self._v2_dir() / "memory.peak",
        }.get(version)
        try:
            return int(path.read_text()) if path else None
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this group for exceeding its memory limit."""
        version, _ = self.detect()
        path = {
            "v1": self._v1_dirs()["memory"] / "memory.oom_control",
            "v2": self._v2_dir() / "memory.events",
        }.get(version)
        try:
            lines = path.read_text().splitlines() if path else []
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
