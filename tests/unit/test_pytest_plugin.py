"""The `stack` fixture stops at the end only a stack it started: a user's stack that answered its probes
slowly must still be running after the tests (it was once shut down mid-restore on a loaded machine)."""

from __future__ import annotations

from harness.backends.base import ServiceStatus, StackStatus
from harness.endpoints import StackEndpoints
from harness.pytest_plugin import using_stack


class FakeBackend:
    def __init__(self, endpoints: object | None, services: list[ServiceStatus]) -> None:
        self._endpoints = endpoints
        self._services = services
        self.calls: list[str] = []

    def endpoints(self) -> object | None:
        return self._endpoints

    def status(self) -> StackStatus:
        return StackStatus("fake", self._services)

    def up(self, report: object) -> StackEndpoints:
        self.calls.append("up")
        return "started"  # type: ignore[return-value]

    def down(self, report: object) -> None:
        self.calls.append("down")


def healthy(name: str) -> ServiceStatus:
    return ServiceStatus(name, "127.0.0.1:1", True, running=True)


def test_a_healthy_stack_is_used_as_it_is_and_left_running() -> None:
    backend = FakeBackend("running", [healthy("postgres"), healthy("redis")])
    with using_stack(backend) as endpoints:  # type: ignore[arg-type]
        assert endpoints == "running"
    assert backend.calls == []


def test_a_stack_that_is_down_is_started_for_the_tests_and_stopped_after() -> None:
    backend = FakeBackend(None, [])
    with using_stack(backend) as endpoints:  # type: ignore[arg-type]
        assert endpoints == "started"
    assert backend.calls == ["up", "down"]


def test_a_running_stack_whose_probe_timed_out_is_completed_but_not_stopped() -> None:
    slow = ServiceStatus("postgres", "127.0.0.1:1", False, detail="probe failed: timeout", running=True)
    backend = FakeBackend("running", [slow, healthy("redis")])
    with using_stack(backend):  # type: ignore[arg-type]
        pass
    assert backend.calls == ["up"]


def test_a_stack_left_behind_by_a_crash_is_started_and_stopped_like_one_that_was_down() -> None:
    dead = [ServiceStatus(name, "127.0.0.1:1", False, detail="not running") for name in ("postgres", "redis")]
    backend = FakeBackend("stale endpoints file", dead)
    with using_stack(backend):  # type: ignore[arg-type]
        pass
    assert backend.calls == ["up", "down"]
