"""A capacity sweep across instance classes on one machine: each data size is grown (and its index built)
once, then the stack is restarted with each class's sizing (harness.sizing, through the backend) and the
size is measured on it. Building 800k x 384 takes the better part of an hour here; doing it once per size
instead of once per class is what makes a two-class sweep to 800k fit in an afternoon.

Growth runs with CPU credits off whatever the sweep measures (a drained gp2 volume would load at 100 IOPS),
and, when the sweep asks for more build memory than the class has, with the database's memory cap raised
for the build only: RDS would build within the instance's memory; each size's growth detail says which.
Every class gets a fresh restart before its measurement, so none inherits another's shared_buffers.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.backends import get_backend
from harness.capacity.knee import CapacityInputError
from harness.capacity.recommend import CapacityModel, Target
from harness.capacity.report import compare_classes
from harness.capacity.results import SweepResult, add_ramp, write_result
from harness.capacity.sweep import Say, Sweep, SweepPlan, new_result
from harness.config import Settings
from harness.endpoints import StackEndpoints
from harness.sizing import db_instance_class
from harness.thresholds.model import ThresholdSet

# How long a restart waits for the archiver to catch up (an 800k build writes a few GB of WAL).
SETTLE_TIMEOUT_S = 900.0
_UNITS = {"kB": 1024, "MB": 1024**2, "GB": 1024**3}
_MEMORY = re.compile(r"^([1-9][0-9]*)(kB|MB|GB)$")


def memory_bytes(text: str) -> int:
    """PostgreSQL's memory units (1024-based), as maintenance_work_mem takes them."""
    match = _MEMORY.match(text)
    if match is None:
        raise CapacityInputError(f"build memory must look like 512MB, 64MB or 3GB, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclasses.dataclass(frozen=True)
class ClassPlan:
    classes: tuple[str, ...]
    # Measure with CPU credits drained and the volume at its baseline IOPS (Settings.cpu_credits = drained).
    drained: bool

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise CapacityInputError(f"classes must be distinct and at least one, got {self.classes}")
        for name in self.classes:
            try:
                db_instance_class(name)
            except ValueError as exc:
                raise CapacityInputError(str(exc)) from None

    def measuring(self, settings: Settings, db_class: str) -> Settings:
        return dataclasses.replace(
            settings, db_instance_class=db_class, cpu_credits="drained" if self.drained else "off"
        )


class StackHandle:
    """The running stack and the settings it was started with; `become` restarts it with others."""

    def __init__(self, settings: Settings, stack: StackEndpoints, say: Say) -> None:
        self.settings, self.stack, self.say = settings, stack, say
        self.restarts = 0
        self.restart_s = 0.0

    def become(self, settings: Settings) -> StackEndpoints:
        began = time.perf_counter()
        self.say(
            f"restarting the stack as {settings.db_instance_class} (cpu_credits = {settings.cpu_credits}) "
            f"from {self.settings.db_instance_class} (cpu_credits = {self.settings.cpu_credits})"
        )
        self._settle()
        get_backend(self.settings).down(self.say)
        self.settings = settings
        self.stack = get_backend(settings).up(self.say)
        self.restarts += 1
        self.restart_s += time.perf_counter() - began
        return self.stack

    def _settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Checkpoint and let the archiver catch up before stopping: after an index build, a shutdown that
        still has to write the build and archive its WAL outlasts the stop timeout, and a server killed
        mid-archive leaves a child holding its shared memory, so the next start refuses (seen here)."""
        deadline = time.monotonic() + timeout_s
        with self.stack.direct.connect(autocommit=True) as conn:
            conn.execute("SET statement_timeout = 0")
            conn.execute("CHECKPOINT")
            # A segment is archived only once it is complete: switch, so the last one is not left waiting.
            conn.execute("SELECT pg_switch_wal()")
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"
                ).fetchone()
                pending = int(row[0]) if row else 0
                if pending == 0:
                    return
                if time.monotonic() > deadline:
                    self.say(f"{pending} WAL segments still waiting for the archiver after {timeout_s:.0f} s")
                    return
                time.sleep(1.0)

    @contextmanager
    def build_room(self, build_memory: str | None) -> Iterator[str]:
        """The database's memory cap raised to the class's memory plus the build memory, when that is more
        than the class has; yields what was done."""
        if build_memory is None:
            yield "built within the instance's memory cap"
            return
        instance = db_instance_class(self.settings.db_instance_class).memory_bytes
        with get_backend(self.settings).database_memory_raised(instance + memory_bytes(build_memory)) as note:
            yield note


def run_classes(
    handle: StackHandle,
    plan: SweepPlan,
    plan_name: str,
    classes: ClassPlan,
    thresholds: ThresholdSet,
    out: Path,
    say: Say,
    model: CapacityModel,
    target: Target,
) -> list[SweepResult]:
    """Grow each size once, measure it on every class (restarting between), ramp per the plan; write each
    class's capacity.json under out/<class>/ after every size and the combined table at out/."""
    original = handle.settings
    began = time.perf_counter()
    results: dict[str, SweepResult] = {}
    out.mkdir(parents=True, exist_ok=True)
    try:
        for size in plan.sizes:
            if handle.settings.cpu_credits != "off":
                handle.become(dataclasses.replace(handle.settings, cpu_credits="off"))
            with handle.build_room(plan.build_memory) as room:
                reached = Sweep(handle.stack, handle.settings, plan, thresholds, out, say).reach(size)
            detail = reached.detail
            if reached.index_built:
                built_on = handle.settings.db_instance_class
                detail += f"; {room}; built once for {', '.join(classes.classes)} on {built_on}"
            for db_class in classes.classes:
                stack = handle.become(classes.measuring(original, db_class))
                sweep = Sweep(stack, handle.settings, plan, thresholds, out / db_class, say)
                result = results.get(db_class)
                if result is None:
                    result = results[db_class] = new_result(stack, plan_name)
                result.sizes.append(sweep.measure(size, reached.seconds, detail))
                if plan.ramp is not None and (plan.ramp_every or size == plan.sizes[-1]):
                    add_ramp(result, sweep.saturate(size))
                result.wall_s = time.perf_counter() - began
                write_result(result, out / db_class)
                write_table(list(results.values()), out, model, target)
                say(f"wall so far {result.wall_s:.0f} s ({handle.restarts} restarts, {handle.restart_s:.0f} s)")
    finally:
        if handle.settings != original:
            handle.become(original)
    return list(results.values())


def write_table(results: Sequence[SweepResult], out: Path, model: CapacityModel, target: Target) -> Path:
    text, _ = compare_classes(results, model, target)
    path = out / "capacity-table.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def class_dirs(path: Path) -> list[Path]:
    """A sweep's result directories: the path itself when it holds capacity.json, else its per-class
    subdirectories (what run_classes writes)."""
    if path.is_file() or (path / "capacity.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/capacity.json"))
    if not found:
        raise CapacityInputError(f"{path} holds no capacity.json, nor do its subdirectories")
    return found
