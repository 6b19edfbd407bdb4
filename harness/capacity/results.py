"""A capacity sweep's results: what each size and each ramp step measured, the sweep as a whole, and its
`capacity.json` (write, read back, and join sweeps of one class run at different times).

Apart from the runner (harness.capacity.sweep) so that rendering and combining results (harness.capacity.report,
`harness capacity table`) does not need the machinery that measures them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.capacity.knee import CapacityInputError
from harness.inputfiles import brief
from harness.thresholds.evaluate import Status


@dataclass
class SizeResult:
    size: int
    grow_s: float
    p95_ms: float
    qps: float
    recall: float
    cache_hit_rate: float | None
    acquire_p95_ms: float
    cpu_mean_pct: float | None
    cpu_peak_pct: float | None
    rss_peak_bytes: float | None
    index_bytes: int
    table_bytes: int
    shared_buffers_bytes: int
    instance_memory_bytes: int | None
    reads_per_s: float
    hit_ratio: float | None
    thresholds: dict[str, str]
    results_file: str
    # The host's 1-minute load average after the step: on a shared machine the figures measure it too.
    host_load: float | None = None
    # How the data reached this size (growth or seed, strategy, index build and the memory it had).
    grow_detail: str = ""

    @property
    def meets(self) -> bool:
        return bool(self.thresholds) and all(s == Status.PASS for s in self.thresholds.values())


@dataclass
class RampStep:
    rate: float
    achieved: float
    p95_ms: float | None
    errors: int
    cpu_mean_pct: float | None
    connections_peak_pct: float | None
    host_cpu_pct: float
    reads_per_s: float
    hit_ratio: float | None
    thresholds: dict[str, str]
    sustained: bool


@dataclass
class Saturation:
    size: int
    rate: float | None
    # What ran out first at the first rate the unit did not sustain (None: it sustained every rate tried).
    limited_by: str | None
    steps: list[RampStep] = field(default_factory=list)


@dataclass
class SweepResult:
    db_class: str
    cache_node: str
    plan: str
    started: str
    wall_s: float
    sizes: list[SizeResult]
    saturation: Saturation | None
    not_emulated: list[str]
    run: dict[str, Any]
    # Every ramp the sweep ran, smallest size first; `saturation` is the one at the largest size.
    ramps: list[Saturation] = field(default_factory=list)
    # CPU credits and storage as the stack ran them (off, or drained with gp2's baseline IOPS).
    conditions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SweepResult:
        def ramp(raw_ramp: dict[str, Any]) -> Saturation:
            return Saturation(**{**raw_ramp, "steps": [RampStep(**s) for s in raw_ramp["steps"]]})

        saturation = raw.get("saturation")
        return cls(
            **{
                **raw,
                "sizes": [SizeResult(**s) for s in raw["sizes"]],
                "saturation": None if saturation is None else ramp(saturation),
                "ramps": [ramp(r) for r in raw.get("ramps", [])],
            }
        )


def add_ramp(result: SweepResult, saturation: Saturation) -> None:
    """Keep every ramp; the saturation point the table uses is the one at the largest size ramped."""
    result.ramps.append(saturation)
    if result.saturation is None or saturation.size >= result.saturation.size:
        result.saturation = saturation


def write_result(result: SweepResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "capacity.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def merge_results(results: Sequence[SweepResult]) -> list[SweepResult]:
    """One result per class and conditions: sweeps run at different times (a long sweep continued later to
    larger sizes) join into one curve, the later run's figure winning where both measured a size."""
    merged: dict[tuple[str, str, tuple[str, ...]], SweepResult] = {}
    for result in sorted(results, key=lambda r: r.started):
        key = (result.db_class, result.cache_node, tuple(result.conditions))
        earlier = merged.get(key)
        if earlier is None:
            merged[key] = result
            continue
        sizes = {s.size: s for s in earlier.sizes} | {s.size: s for s in result.sizes}
        ramps = {r.size: r for r in earlier.ramps} | {r.size: r for r in result.ramps}
        largest = max(sizes)
        saturation = next(
            (r.saturation for r in (result, earlier) if r.saturation is not None and r.saturation.size == largest),
            None,
        )
        merged[key] = dataclasses.replace(
            result,
            started=earlier.started,
            wall_s=earlier.wall_s + result.wall_s,
            sizes=[sizes[n] for n in sorted(sizes)],
            ramps=[ramps[n] for n in sorted(ramps)],
            saturation=saturation,
            not_emulated=list(dict.fromkeys([*earlier.not_emulated, *result.not_emulated])),
        )
    return list(merged.values())


def read_result(path: Path) -> SweepResult:
    file = path / "capacity.json" if path.is_dir() else path
    try:
        return SweepResult.from_json(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # AttributeError: a list or number where a mapping belongs (found by the hostile-input sweep).
        raise CapacityInputError(f"cannot read a capacity result from {file}: {brief(exc)}") from None
