"""Helpers for tests that run a second, throw-away stack beside the session's."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from psycopg import sql

from harness.endpoints import PostgresEndpoint, StackEndpoints, load_endpoints


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


class IsolatedStack:
    """Drives the real CLI against its own state directory and ports."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        pg, proxy, redis, aws, lambda_ = free_ports(5)
        self.ports = {
            "postgres_port": pg,
            "proxy_port": proxy,
            "redis_port": redis,
            "aws_port": aws,
            "lambda_port": lambda_,
        }
        self.env = {
            **os.environ,
            "HARNESS_STATE_DIR": str(state_dir),
            **{f"HARNESS_{k.upper()}": str(v) for k, v in self.ports.items()},
        }

    def harness(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pids(self) -> dict[str, int]:
        import json

        run = self.state_dir / "run"
        return {p.stem: json.loads(p.read_text())["pid"] for p in run.glob("*.json")} if run.exists() else {}

    def processes_mentioning_state(self) -> list[str]:
        import psutil

        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
            try:
                cmdline = " ".join(proc.info["cmdline"] or [])
                environ = proc.info["environ"] or {}
            except psutil.Error:
                continue
            if str(self.state_dir) in cmdline or environ.get("TMPDIR") == str(self.state_dir / "aws"):
                found.append(f"{proc.info['pid']}: {cmdline[:100]}")
        return found


@pytest.fixture
def free_port_numbers() -> Callable[[int], list[int]]:
    """free_ports, for tests that start a stack through another interpreter (an installed harness)."""
    return free_ports


@pytest.fixture
def isolated_stack():
    # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps, data directory included.
    root = Path(tempfile.mkdtemp(prefix="dbunit-stack-"))
    stack = IsolatedStack(root / "state")
    yield stack
    stack.harness("down", "--purge")
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _credit_stack(prefix: str, **env: str) -> Iterator[StackEndpoints]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    isolated = IsolatedStack(root / "state")
    isolated.env.update(env)
    try:
        up = isolated.harness("up", timeout=180)
        assert up.returncode == 0, up.stderr[-2000:]
        endpoints = load_endpoints(isolated.state_dir)
        assert endpoints is not None
        yield endpoints
    finally:
        isolated.harness("down", "--purge")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def drained_stack() -> Iterator[StackEndpoints]:
    """A throw-away embedded stack started with cpu_credits = drained, stopped by PID and purged afterwards."""
    with _credit_stack("dbunit-drained-", HARNESS_CPU_CREDITS="drained") as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def live_stack() -> Iterator[StackEndpoints]:
    """A throw-away stack with cpu_credits = live whose cache node starts with 0.02 credits (1.2 CPU-seconds):
    a few seconds of load empty it."""
    with _credit_stack(
        "dbunit-live-", HARNESS_CPU_CREDITS="live", HARNESS_CPU_CREDIT_START_BALANCE="0.02"
    ) as endpoints:
        yield endpoints


@contextmanager
def _scratch_database(stack: StackEndpoints, name: str) -> Iterator[PostgresEndpoint]:
    """An empty database on the stack's server for the duration, dropped (connections forced off) after."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with stack.direct.connect(autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield dataclasses.replace(stack.direct, dbname=name)
    finally:
        with stack.direct.connect(autocommit=True) as conn:
            conn.execute(drop)


ScratchDatabase = Callable[[StackEndpoints, str], AbstractContextManager[PostgresEndpoint]]


@pytest.fixture(scope="session")
def scratch_database() -> ScratchDatabase:
    return _scratch_database


# -- the compose backend (tests/integration/test_compose_*.py) ----------------------------------------------

# A cold build installs Debian packages and downloads wheels; a warm one takes seconds.
COMPOSE_UP_TIMEOUT_S = 1200


def engine_problem() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command on PATH"
    try:
        engine = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=20)
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 20 s"
    if engine.returncode != 0:
        return "no Docker engine answers (start one with .ci/docker-engine)"
    if plugin.returncode != 0:
        return "the docker CLI has no compose plugin (.ci/docker-engine installs one)"
    return None


@pytest.fixture
def docker_engine() -> None:
    """Skips the test, with the reason, when no Docker engine with compose answers."""
    problem = engine_problem()
    if problem:
        pytest.skip(problem)


class ComposeStack(IsolatedStack):
    """An isolated stack on the compose backend: its own project (named from the state directory) and ports."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.env["HARNESS_BACKEND"] = "compose"
        self.last_up = ""
        self.volumes_before: set[str] = set()

    def up(self) -> StackEndpoints:
        done = self.harness("up", timeout=COMPOSE_UP_TIMEOUT_S)
        assert done.returncode == 0, done.stderr[-3000:]
        self.last_up = done.stderr + done.stdout
        endpoints = load_endpoints(self.state_dir)
        assert endpoints is not None and endpoints.backend == "compose"
        return endpoints

    @property
    def project(self) -> str:
        return str(self.endpoints().facts["project"])

    def endpoints(self) -> StackEndpoints:
        found = load_endpoints(self.state_dir)
        assert found is not None, f"no endpoint file in {self.state_dir}"
        return found


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    problem = engine_problem()
    if problem:
        pytest.skip(f"compose stack not started: {problem}")
    root = Path(tempfile.mkdtemp(prefix="dbunit-compose-"))
    stack = ComposeStack(root / "state")
    # What was there before, so a test can tell what the stack left behind from what others keep.
    listed = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True, timeout=60, check=True)
    stack.volumes_before = set(listed.stdout.split())
    try:
        stack.up()
        yield stack
    finally:
        stack.harness("down", "--purge", timeout=300)
        shutil.rmtree(root, ignore_errors=True)
