"""Load shapes as data: a list of stages, each holding a user count until a moment of the run.

Every shape ends (its last stage has an end), so a run with a shape is bounded whatever else is set.
The Locust `LoadTestShape` that plays a profile is in `harness.locustusers.plugin`; this module has no
Locust import, so it is tested without gevent.

- ramp:  five equal steps up to `users`, each a plateau at which latency can be read.
- spike: `users` for the first third, a burst to `peak_users` spawned within a second (as Lambda sees a
         burst of concurrent invocations), back to `users` after a sixth of the run.
- soak:  a gentle ramp to `users` over a tenth of the run (at most a minute), then held for hours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

RAMP_STEPS = 5
# Soak runs are long by nature: this is the default when no --run-time is given.
SOAK_DEFAULT_RUN_TIME_S = 30 * 60
DEFAULT_RUN_TIME_S = 60


class ShapeError(ValueError):
    """Shape parameters that cannot make a load; the message names the option to change."""


@dataclass(frozen=True)
class Stage:
    end_s: float
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class ShapeParams:
    users: int
    spawn_rate: float
    run_time_s: float
    peak_users: int | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    stages: tuple[Stage, ...]

    def at(self, t: float) -> tuple[int, float] | None:
        """(users, spawn rate) at `t` seconds into the run, or None once the last stage has ended."""
        for stage in self.stages:
            if t < stage.end_s:
                return stage.users, stage.spawn_rate
        return None

    @property
    def duration_s(self) -> float:
        return self.stages[-1].end_s


def _check(params: ShapeParams) -> None:
    if params.users < 1:
        raise ShapeError(f"--users must be at least 1 for a shape, got {params.users}")
    if params.spawn_rate <= 0:
        raise ShapeError(f"--spawn-rate must be positive, got {params.spawn_rate}")
    if params.run_time_s <= 0:
        raise ShapeError(f"--run-time must be positive, got {params.run_time_s}")


def _rate_to_finish(delta: int, within_s: float, floor: float) -> float:
    # Locust's runner blocks until a stage has spawned its users: a stage that spawns slower than it lasts
    # would swallow the next one, so each stage spawns within a quarter of its length at the latest.
    return max(floor, delta / max(within_s / 4, 0.25))


def ramp(params: ShapeParams) -> Profile:
    _check(params)
    steps = min(RAMP_STEPS, params.users)
    length = params.run_time_s / steps
    stages, previous = [], 0
    for i in range(1, steps + 1):
        users = math.ceil(params.users * i / steps)
        stages.append(Stage(length * i, users, _rate_to_finish(users - previous, length, params.spawn_rate)))
        previous = users
    return Profile("ramp", tuple(stages))


def spike(params: ShapeParams) -> Profile:
    _check(params)
    peak = params.peak_users if params.peak_users is not None else 5 * params.users
    if peak <= params.users:
        raise ShapeError(f"--spike-users ({peak}) must exceed --users ({params.users})")
    third, sixth = params.run_time_s / 3, params.run_time_s / 6
    burst = float(peak)  # the whole burst within a second
    return Profile(
        "spike",
        (
            Stage(third, params.users, _rate_to_finish(params.users, third, params.spawn_rate)),
            Stage(third + sixth, peak, burst),
            Stage(params.run_time_s, params.users, burst),
        ),
    )


def soak(params: ShapeParams) -> Profile:
    _check(params)
    # One stage: spawning at users / warm-up takes the warm-up, and Locust then holds the count.
    warm = min(params.run_time_s / 10, 60.0)
    return Profile("soak", (Stage(params.run_time_s, params.users, params.users / warm),))


SHAPES: dict[str, Callable[[ShapeParams], Profile]] = {"ramp": ramp, "spike": spike, "soak": soak}


def default_run_time_s(shape: str | None) -> float:
    """The run time used when none is given: runs are always bounded."""
    return SOAK_DEFAULT_RUN_TIME_S if shape == "soak" else DEFAULT_RUN_TIME_S
