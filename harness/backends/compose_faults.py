"""Fault drills on the compose stack: one service's container SIGKILLed, as a crash would end it, or
restarted (SIGTERM, then started again on the same container and volumes).

The main process of every image is the container's PID 1 (the entrypoints `exec` the server), so a SIGKILL
from the engine ends the server itself, as `kill -9` of the embedded stack's process does; the container
stops with it and the next `harness up` (`docker compose up --wait`) starts it again on its volume. A restart
is over only when the service's own healthcheck passes again, with a deadline, so the drill measures the
service, not a guess at how long it takes.
"""

from __future__ import annotations

import time
from typing import Any

from harness.backends.base import Reporter
from harness.backends.compose_engine import compose_run, docker_run, first_line
from harness.backends.compose_spec import HEALTHCHECK_TIMING
from harness.services.process import ServiceError

# The healthcheck's own patience: compose declares a service unhealthy after its retries, 2 s apart.
READY_DEADLINE_S = float(HEALTHCHECK_TIMING["retries"]) * float(str(HEALTHCHECK_TIMING["interval"]).rstrip("s"))
STOPPED_DEADLINE_S = 30.0
POLL_S = 0.1


def container_of(compose: Any, service: str) -> str:
    """The id of the service's container, running or stopped; ServiceError when compose has none."""
    listed = compose_run(compose, "ps", "--all", "--quiet", service)
    ids = listed.stdout.split()
    if listed.returncode != 0 or not ids:
        raise ServiceError(
            f"the compose stack has no {service} container ({first_line(listed.stderr) or 'not created'}); "
            "start the stack with `harness up --backend compose`"
        )
    return ids[0]


def _state(docker: str, container: str) -> tuple[bool, str]:
    """(running, health) of a container; health is "" for a service without a healthcheck."""
    state = "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
    done = docker_run(docker, "inspect", "--format", state, container)
    if done.returncode != 0:
        raise ServiceError(f"`docker inspect {container}` failed: {first_line(done.stderr)}")
    running, _, health = done.stdout.strip().partition(" ")
    return running == "true", health


def kill(compose: Any, docker: str, service: str, report: Reporter) -> None:
    """SIGKILL the service's main process and wait until its container has stopped."""
    container = container_of(compose, service)
    if not _state(docker, container)[0]:
        raise ServiceError(f"{service} is not running; start the stack with `harness up --backend compose`")
    done = docker_run(docker, "kill", "--signal", "KILL", container)
    if done.returncode != 0:
        raise ServiceError(f"`docker kill --signal KILL` of {service} failed: {first_line(done.stderr)}")
    deadline = time.monotonic() + STOPPED_DEADLINE_S
    while _state(docker, container)[0]:
        if time.monotonic() > deadline:
            raise ServiceError(f"{service}'s container still runs {STOPPED_DEADLINE_S:.0f} s after SIGKILL")
        time.sleep(POLL_S)
    report(f"{service}: killed (SIGKILL to the main process of container {container[:12]})")


def wait_healthy(docker: str, container: str, service: str, deadline_s: float = READY_DEADLINE_S) -> float:
    """Seconds until the container runs and its healthcheck passes; ServiceError past the deadline."""
    began = time.monotonic()
    while True:
        running, health = _state(docker, container)
        if running and health in ("healthy", ""):
            return time.monotonic() - began
        if time.monotonic() - began > deadline_s:
            raise ServiceError(
                f"{service} is not healthy {deadline_s:.0f} s after its restart (running: {running}, health: "
                f"{health or 'none'}); see `docker compose logs {service}`"
            )
        time.sleep(POLL_S)


def restart(compose: Any, docker: str, service: str, report: Reporter) -> None:
    """Stop the service (SIGTERM, its clean shutdown) and start it again; return once it is healthy."""
    container = container_of(compose, service)
    began = time.monotonic()
    done = compose_run(compose, "restart", service)
    if done.returncode != 0:
        raise ServiceError(f"`docker compose restart {service}` failed: {first_line(done.stderr)}")
    wait_healthy(docker, container, service)
    report(f"{service}: restarted in {time.monotonic() - began:.1f} s (healthy again)")
