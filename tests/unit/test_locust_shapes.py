"""Load shapes: every stage list ends, and each shape keeps its promise (steps, burst, gentle ramp)."""

from __future__ import annotations

import pytest

from harness.locustusers.shapes import (
    DEFAULT_RUN_TIME_S,
    SHAPES,
    SOAK_DEFAULT_RUN_TIME_S,
    ShapeError,
    ShapeParams,
    default_run_time_s,
    ramp,
    soak,
    spike,
)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_ends_at_the_run_time(name: str) -> None:
    profile = SHAPES[name](ShapeParams(users=10, spawn_rate=1, run_time_s=60))
    assert profile.duration_s == 60
    assert profile.at(59.9) is not None
    assert profile.at(60) is None


def test_ramp_climbs_in_five_plateaus_each_spawned_within_its_first_quarter() -> None:
    profile = ramp(ShapeParams(users=20, spawn_rate=1, run_time_s=100))
    assert [stage.users for stage in profile.stages] == [4, 8, 12, 16, 20]
    assert [stage.end_s for stage in profile.stages] == [20, 40, 60, 80, 100]
    assert all(4 / stage.spawn_rate <= 20 / 4 for stage in profile.stages)
    assert profile.at(45) == (12, profile.stages[2].spawn_rate)


def test_ramp_of_fewer_users_than_steps_adds_one_at_a_time() -> None:
    assert [stage.users for stage in ramp(ShapeParams(3, 1, 30)).stages] == [1, 2, 3]


def test_spike_bursts_to_the_peak_within_a_second_then_recovers() -> None:
    profile = spike(ShapeParams(users=4, spawn_rate=1, run_time_s=60, peak_users=30))
    assert profile.at(10) == (4, 1.0)
    assert profile.at(25) == (30, 30.0)
    assert profile.at(40) == (4, 30.0)
    assert spike(ShapeParams(users=4, spawn_rate=1, run_time_s=60)).at(25) == (20, 20.0)


def test_soak_spawns_gently_over_a_tenth_of_the_run_at_most_a_minute() -> None:
    assert soak(ShapeParams(users=10, spawn_rate=5, run_time_s=50)).at(0) == (10, 2.0)
    assert soak(ShapeParams(users=60, spawn_rate=5, run_time_s=3600)).at(0) == (60, 1.0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (ShapeParams(0, 1, 60), "--users"),
        (ShapeParams(5, 0, 60), "--spawn-rate"),
        (ShapeParams(5, 1, 0), "--run-time"),
        (ShapeParams(5, 1, 60, peak_users=5), "--spike-users"),
    ],
)
def test_impossible_parameters_name_the_option(params: ShapeParams, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        spike(params)


def test_runs_are_bounded_without_a_run_time() -> None:
    assert default_run_time_s(None) == DEFAULT_RUN_TIME_S == 60
    assert default_run_time_s("soak") == SOAK_DEFAULT_RUN_TIME_S
