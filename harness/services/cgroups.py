"""Memory, CPU and disk caps for a local process tree, where the machine lets us set them.

A db.t3.micro has 1 GiB and 2 vCPU; without a cap PostgreSQL on a developer machine would use the
page cache and cores of the whole host and look far faster than RDS. A drained cache.t3.micro gets 0.2
of a core, and a gp2 20 GB volume 100 IOPS. Writable cgroup v1 hierarchies (memory, cpu, blkio) and a
delegated cgroup v2 tree are supported; anywhere else the limiter says why not and the stack runs
uncapped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as a huge page-aligned number.
V1_UNLIMITED = 2**62
CPU_PERIOD_US = 100_000
# A throttled t3 is slowed by the hypervisor in slices far shorter than CFS's default 100 ms period, in
# which a process at 0.2 of a core runs 20 ms and then stalls for 80 ms. With a 10 ms period the longest
# stall is 8 ms: closer to the real instance, at the price of more scheduler wake-ups. Instances held at a
# credit baseline use this period.
BURSTABLE_CPU_PERIOD_US = 10_000
# The kernel refuses CFS quotas below 1 ms.
MIN_CPU_QUOTA_US = 1000


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

    def _v1_blkio(self) -> Path | None:
        """The group's blkio directory where the machine has a writable v1 blkio hierarchy."""
        parent = self.root / "blkio"
        if (parent / "blkio.throttle.read_iops_device").exists() and os.access(parent, os.W_OK):
            return parent / self.name
        return None

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

    def apply(
        self, memory_bytes: int, vcpus: float, cpu_period_us: int = CPU_PERIOD_US
    ) -> tuple[CgroupStatus, Callable[[], None] | None]:
        version, reason = self.detect()
        if not version:
            return CgroupStatus(False, "", None, None, reason), None
        quota = max(MIN_CPU_QUOTA_US, int(vcpus * cpu_period_us))
        try:
            if version == "v1":
                dirs = self._v1_dirs()
                blkio = self._v1_blkio()
                if blkio is not None:
                    # Joined too, so that disk limits set later (set_io_limits) apply to the same tree.
                    dirs["blkio"] = blkio
                for directory in dirs.values():
                    directory.mkdir(parents=True, exist_ok=True)
                (dirs["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(cpu_period_us))
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
                procs = [d / "cgroup.procs" for d in dirs.values()]
                where = ", ".join(str(d) for d in dirs.values())
            else:
                directory = self._v2_dir()
                # A child gets the memory/cpu files only once its parent delegates those controllers.
                (self.root / "cgroup.subtree_control").write_text("+memory +cpu")
                directory.mkdir(exist_ok=True)
                (directory / "memory.max").write_text(str(memory_bytes))
                (directory / "cpu.max").write_text(f"{quota} {cpu_period_us}")
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

    def join(self, pid: int) -> None:
        """Move a running process into every hierarchy of the group (memory, cpu, blkio; or v2's one)."""
        version, reason = self.detect()
        if version == "v1":
            dirs = [*self._v1_dirs().values()]
            blkio = self._v1_blkio()
            if blkio is not None and blkio.exists():
                dirs.append(blkio)
        elif version == "v2":
            dirs = [self._v2_dir()]
        else:
            raise OSError(reason)
        for directory in dirs:
            (directory / "cgroup.procs").write_text(str(pid))

    def contains(self, pid: int) -> bool:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return False
        return any(line.rstrip().endswith("/" + self.name) for line in lines)

    def _all_dirs(self) -> list[Path]:
        return [*self._v1_dirs().values(), self.root / "blkio" / self.name, self._v2_dir()]

    def exists(self) -> bool:
        return any(directory.exists() for directory in self._all_dirs())

    def remove(self) -> None:
        """Remove the group's directories; the kernel refuses while a process is still in them."""
        for directory in self._all_dirs():
            with contextlib.suppress(OSError):
                directory.rmdir()

    # -- live adjustments and readings of a configured group (the Lambda runtime uses these) ---------

    def set_cpu_limit(self, vcpus: float | None) -> None:
        """Change the CPU cap of the group `apply` configured (keeping its period); None lifts it."""
        version, _ = self.detect()
        period = self.cpu_limit()[1] or CPU_PERIOD_US
        if version == "v1":
            quota = -1 if vcpus is None else max(MIN_CPU_QUOTA_US, int(vcpus * period))
            (self._v1_dirs()["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
        elif version == "v2":
            quota_text = "max" if vcpus is None else str(max(MIN_CPU_QUOTA_US, int(vcpus * period)))
            (self._v2_dir() / "cpu.max").write_text(f"{quota_text} {period}")

    def cpu_weight(self) -> int | None:
        """The group's CPU weight against its siblings (v1 cpu.shares, default 1024; v2 cpu.weight, default 100);
        None when it cannot be read."""
        version, _ = self.detect()
        path = self._v1_dirs()["cpu"] / "cpu.shares" if version == "v1" else self._v2_dir() / "cpu.weight"
        if not version:
            return None
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def set_cpu_weight(self, weight: int) -> None:
        """Change the group's CPU weight. The scheduler counts a group once against each of the host's other
        runnable tasks, so on a busy host a group of N busy processes gets the share of one; a weight N times the
        default gives it the share its N processes would have outside the group. The cap (`set_cpu_limit`) holds."""
        version, _ = self.detect()
        if version == "v1":
            (self._v1_dirs()["cpu"] / "cpu.shares").write_text(str(max(2, min(weight, 262_144))))
        elif version == "v2":
            (self._v2_dir() / "cpu.weight").write_text(str(max(1, min(weight, 10_000))))

    def set_memory_limit(self, memory_bytes: int) -> None:
        """Change the memory cap of the group `apply` configured. Raises OSError where it cannot (the kernel
        refuses a cap below what the group already uses)."""
        version, reason = self.detect()
        if version == "v1":
            (self._v1_dirs()["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
        elif version == "v2":
            (self._v2_dir() / "memory.max").write_text(str(memory_bytes))
        else:
            raise OSError(reason)

    def memory_limit(self) -> int | None:
        """The group's memory cap as the kernel holds it; None when uncapped or unreadable."""
        version, _ = self.detect()
        try:
            if version == "v1":
                value = int((self._v1_dirs()["memory"] / "memory.limit_in_bytes").read_text())
                return None if value >= V1_UNLIMITED else value
            if version == "v2":
                text = (self._v2_dir() / "memory.max").read_text().strip()
                return None if text == "max" else int(text)
        except (OSError, ValueError):
            return None
        return None

    def cpu_limit(self) -> tuple[float | None, int | None]:
        """(vCPUs the group may use, CFS period in µs) as the kernel holds them; (None, period) when
        uncapped, (None, None) when the group cannot be read."""
        version, _ = self.detect()
        try:
            if version == "v1":
                cpu = self._v1_dirs()["cpu"]
                quota = int((cpu / "cpu.cfs_quota_us").read_text())
                period = int((cpu / "cpu.cfs_period_us").read_text())
            elif version == "v2":
                quota_text, period_text = (self._v2_dir() / "cpu.max").read_text().split()
                period = int(period_text)
                quota = -1 if quota_text == "max" else int(quota_text)
            else:
                return None, None
        except (OSError, ValueError):
            return None, None
        return (None if quota < 0 else quota / period), period

    # -- disk: IOPS and throughput limits on one block device ------------------------------------------

    def set_io_limits(self, device: str, iops: int | None, bytes_s: int | None) -> str:
        """Cap reads and writes of the group on `device` ("major:minor"); None lifts a limit. Returns
        "" when set, else why not. cgroup v1 throttles reads and direct I/O only: buffered writes are
        written back by the kernel's flusher threads, outside the group."""
        version, reason = self.detect()
        try:
            if version == "v1":
                blkio = self._v1_blkio()
                if blkio is None or not blkio.exists():
                    return "no writable cgroup v1 blkio hierarchy joined by this group"
                for op in ("read", "write"):
                    (blkio / f"blkio.throttle.{op}_iops_device").write_text(f"{device} {iops or 0}")
                    (blkio / f"blkio.throttle.{op}_bps_device").write_text(f"{device} {bytes_s or 0}")
                return ""
            if version == "v2":
                iops_text = "max" if iops is None else str(iops)
                bps_text = "max" if bytes_s is None else str(bytes_s)
                (self.root / "cgroup.subtree_control").write_text("+io")
                (self._v2_dir() / "io.max").write_text(
                    f"{device} riops={iops_text} wiops={iops_text} rbps={bps_text} wbps={bps_text}"
                )
                return ""
        except OSError as exc:
            return f"could not set disk limits on {device} in {self.name}: {exc}"
        return reason

    def io_limits(self, device: str) -> dict[str, int]:
        """The group's limits on `device` as the kernel holds them (v1 blkio), e.g. {"read_iops": 100}."""
        blkio = self._v1_blkio()
        found: dict[str, int] = {}
        if blkio is None:
            return found
        for key in ("read_iops", "write_iops", "read_bps", "write_bps"):
            with contextlib.suppress(OSError, ValueError):
                for line in (blkio / f"blkio.throttle.{key}_device").read_text().splitlines():
                    dev, _, value = line.partition(" ")
                    if dev == device:
                        found[key] = int(value)
        return found

    def io_serviced(self, device: str) -> tuple[int, int] | None:
        """(read, write) I/O operations the group has issued to `device` (v1 blkio), None if unknown."""
        blkio = self._v1_blkio()
        if blkio is None:
            return None
        counts = {"Read": 0, "Write": 0}
        try:
            lines = (blkio / "blkio.throttle.io_serviced").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == device and parts[1] in counts:
                counts[parts[1]] = int(parts[2])
        return counts["Read"], counts["Write"]

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


def block_device_of(path: Path) -> str:
    """ "major:minor" of the whole disk holding `path`: blkio throttles disks, not partitions."""
    st = path.stat()
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sys_dev = Path("/sys/dev/block") / device
    if (sys_dev / "partition").exists():
        parent_dev = sys_dev.resolve().parent / "dev"
        with contextlib.suppress(OSError):
            return parent_dev.read_text().strip()
    return device
