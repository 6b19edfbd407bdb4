"""Execution environments as containers the engine sizes, as Lambda emulators (SAM, LocalStack) run them:
one container per environment, from the image compose/lambda/Dockerfile builds.

Limits: memory = MemorySize, with the memory+swap limit equal so it cannot swap (mem_limit, memswap_limit);
CPU = MemorySize/1769 of one CPU as a CFS quota (cpu_quota/cpu_period), applied with `container.update`
once INIT is over: Lambda boosts CPU during INIT, and so do these, as the process environments do. The
engine keeps both in the container's cgroup, so a laptop without writable cgroups (Docker Desktop) gets
the same memory limit and CPU share the embedded runtime gets from cgroups as root.

The channel: the container's stdin carries requests, its stdout the worker's replies and its stderr what
the function prints (worker.py), all through one attach socket, demultiplexed here onto the pipes the
shared code reads (environment.py).

Memory: each reply carries the peak the worker read from the container's own cgroup (sandbox.py), with no
API round-trip per invocation; the engine's stats API would cost one, and keeps no peak on cgroup v2. A
kill for memory is the engine's State.OOMKilled, reported as Lambda reports it (Runtime.OutOfMemory,
"signal: killed"). A timeout removes the container, as Lambda discards the environment.

Networking: the container joins the compose project's network, and the worker forwards the unit's
published ports from the container's own 127.0.0.1 to the services (sandbox.py says why). Each container
carries the project's label, so whatever a killed runtime left is found and removed (`prepare`, and the
compose backend's `down`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.utils.socket import STDOUT, SocketError, frames_iter

import harness
from harness.lambda_runtime.environment import (
    EnvironmentFailure,
    ExecutionEnvironment,
    FunctionSpec,
)
from harness.lambda_runtime.sandbox import FORWARD_VARIABLE, USAGE_VARIABLE, format_forwards
from harness.sizing import lambda_vcpu_share

# Every function container carries these labels: the project, to find them all; the function, to show.
PROJECT_LABEL = "dbunit-harness.project"
FUNCTION_LABEL = "dbunit-harness.lambda-function"
COMPOSE_LABEL_PREFIX = "com.docker.compose."
# Set by compose/lambda/Dockerfile: the versions the functions import.
PACKAGES_LABEL = "dbunit-harness.packages"
# Where the image finds the function (Lambda's own path) and the harness's worker, both mounted read-only.
TASK_ROOT = "/var/task"
HARNESS_MOUNT = "/opt/dbunit-harness/harness"
WORKER_COMMAND = ["python3", "-m", "harness.lambda_runtime.worker"]
CPU_PERIOD_US = 100_000
# Creating and starting a container: a busy engine takes seconds; past this the invoke fails.
ENGINE_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
# What an API call raises: the SDK's own errors, and the HTTP client's when the engine stops answering.
ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)


@dataclass(frozen=True)
class ContainerOptions:
    image: str
    network: str
    # The label value every container of this runtime carries (the compose project).
    project: str
    # Published port -> (service, container port), forwarded inside each container.
    forwards: dict[int, tuple[str, int]]


def context_endpoint() -> str | None:
    """The docker CLI's current context's endpoint: the SDK reads DOCKER_HOST but not contexts, and Docker
    Desktop's context is not the default socket. None when DOCKER_HOST is set or the CLI cannot say."""
    docker_cli = shutil.which("docker")
    if os.environ.get("DOCKER_HOST") or docker_cli is None:
        return None
    try:
        done = subprocess.run(
            [docker_cli, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            timeout=ENGINE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def engine_client() -> docker.DockerClient:
    """The engine's client (DOCKER_HOST, the CLI's context, or the default socket); one clear error when none
    answers."""
    try:
        endpoint = context_endpoint()
        if endpoint:
            client = docker.DockerClient(base_url=endpoint, timeout=ENGINE_TIMEOUT_S)
        else:
            client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
        client.ping()
    except ENGINE_ERRORS as exc:
        raise EnvironmentFailure(f"no Docker engine answers for the Lambda containers: {exc}") from None
    return client


def remove_project_containers(client: docker.DockerClient, project: str) -> list[str]:
    """Remove every function container labelled with `project`, running or not; their names."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed.append(container.name)
    return removed


def limits_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """A container's memory and CPU limits as `docker inspect` holds them (None: unlimited)."""
    host = attrs["HostConfig"]
    quota, period, nano = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0, host.get("NanoCpus") or 0
    vcpus = quota / period if quota > 0 and period > 0 else nano / 1e9 if nano else None
    return {
        "memory_bytes": host.get("Memory") or None,
        "memory_swap_bytes": host.get("MemorySwap") or None,
        "vcpus": vcpus,
    }


class ContainerEnvironment(ExecutionEnvironment):
    task_root = TASK_ROOT
    tmp_dir = "/tmp"

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        env_id: str,
        work_dir: Path,
        base_env: dict[str, str],
        client: docker.DockerClient,
        options: ContainerOptions,
        labels: dict[str, str],
    ) -> None:
        super().__init__(spec, env_id=env_id, work_dir=work_dir, base_env=base_env)
        self.client = client
        self.options = options
        self.labels = {**labels, PROJECT_LABEL: options.project, FUNCTION_LABEL: spec.name}
        self.container: Container | None = None
        self._socket: Any = None
        self._exited = threading.Event()

    @property
    def alive(self) -> bool:
        return self.container is not None and not self._exited.is_set()

    def _launch(self, environment: dict[str, str]) -> float:
        environment = {
            **{key: value for key, value in environment.items() if key != "PATH"},
            USAGE_VARIABLE: "1",
            FORWARD_VARIABLE: format_forwards(self.options.forwards),
            "PYTHONPATH": str(Path(HARNESS_MOUNT).parent),
        }
        limit = self.memory_limit_bytes
        try:
            self.container = self.client.containers.create(
                self.options.image,
                WORKER_COMMAND,
                name=f"{self.options.project}-lambda-{self.env_id[:12]}",
                labels=self.labels,
                environment=environment,
                working_dir=TASK_ROOT,
                stdin_open=True,
                mem_limit=limit,
                memswap_limit=limit,
                network=self.options.network,
                volumes={
                    str(self.spec.code_dir): {"bind": TASK_ROOT, "mode": "ro"},
                    str(Path(harness.__file__).parent): {"bind": HARNESS_MOUNT, "mode": "ro"},
                },
            )
            # Attached before it starts, so not a byte of INIT's output is missed.
            self._socket = self.client.api.attach_socket(
                self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            reply_r, reply_w = os.pipe()
            log_r, log_w = os.pipe()
            self._reply_r = reply_r
            self._request_w = os.dup(self._socket.fileno())
            threading.Thread(
                target=self._demultiplex, args=(reply_w, log_w), daemon=True, name=f"attach-{self.env_id}"
            ).start()
            self._start_log_reader(log_r)
            self.container.start()
            # Lambda's Init Duration leaves out making the sandbox: measured from the moment the worker runs.
            began = time.perf_counter()
        except ENGINE_ERRORS as exc:
            self.kill()
            raise EnvironmentFailure(f"could not start a container from {self.options.image}: {exc}") from None
        return began

    def _demultiplex(self, reply_w: int, log_w: int) -> None:
        """The attach stream's frames onto two pipes: stdout (replies) and stderr (log lines)."""
        try:
            for stream, data in frames_iter(self._socket, tty=False):
                view = memoryview(data)
                while view:
                    view = view[os.write(reply_w if stream == STDOUT else log_w, view) :]
        except (OSError, SocketError):
            pass
        finally:
            self._exited.set()
            os.close(reply_w)
            os.close(log_w)

    def _init_done(self) -> None:
        assert self.container is not None
        quota = round(lambda_vcpu_share(self.spec.memory_mb) * CPU_PERIOD_US)
        try:
            self.container.update(cpu_period=CPU_PERIOD_US, cpu_quota=quota)
        except ENGINE_ERRORS as exc:
            self.kill()
            raise EnvironmentFailure(f"could not apply the CPU share to {self.container.name}: {exc}") from None

    def _engine_peak(self) -> int:
        """The engine's figure, for an invocation that ended without a reply (v1 keeps a peak, v2 only usage)."""
        if self.container is None:
            return 0
        try:
            memory = self.container.stats(stream=False, one_shot=True).get("memory_stats", {})
        except ENGINE_ERRORS:
            return 0
        return int(memory.get("max_usage") or memory.get("usage") or 0)

    def _peak_after_init_failure(self) -> int:
        return self._engine_peak()

    def _invocation_ends(self, kind: str, reply: dict[str, Any]) -> tuple[str, int, float]:
        usage = reply.get("usage", {})
        if kind not in ("timeout", "crash"):
            return kind, int(usage.get("peak_bytes", 0)), float(usage.get("cpu_seconds", 0.0))
        peak = self._engine_peak() if kind == "timeout" else 0
        if kind == "crash" and self._oom_killed():
            kind = "oom"
        self.kill()
        return kind, peak, 0.0

    def _oom_killed(self) -> bool:
        """Whether the engine killed the crashed container for memory, once it has exited."""
        if self.container is None:
            return False
        try:
            self.container.wait(timeout=STOP_TIMEOUT_S)
        except ENGINE_ERRORS:
            return False
        with contextlib.suppress(*ENGINE_ERRORS):
            self.container.reload()
            return bool(self.container.attrs["State"].get("OOMKilled"))
        return False

    def kill(self) -> None:
        container, self.container = self.container, None
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except ENGINE_ERRORS as exc:
                # The project label lets the next start, or `harness down`, remove it.
                print(f"lambda runtime: could not remove {container.name}: {exc}", file=sys.stderr, flush=True)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
        self._close_channel()


class ContainerEnvironments:
    """The environment kind for the compose backend: one container per environment."""

    enforced = True

    def __init__(self, options: ContainerOptions) -> None:
        self.options = options
        self.client = engine_client()
        self.labels: dict[str, str] = {}
        self.detail = (
            f"each environment a container of {options.image}: the engine holds MemorySize (no swap) and "
            "MemorySize/1769 CPUs after INIT"
        )

    def prepare(self, envs_dir: Path) -> None:
        try:
            image = self.client.images.get(self.options.image)
            self.client.networks.get(self.options.network)
        except docker.errors.NotFound as exc:
            raise EnvironmentFailure(
                f"{exc.explanation}: the Lambda containers need the image and the network "
                "`harness up --backend compose` builds and starts"
            ) from None
        # A container inherits its image's labels, and compose labelled the image with its project and service
        # when it built it: blanked, so compose never takes a function container for one of its own.
        self.labels = {key: "" for key in image.labels if key.startswith(COMPOSE_LABEL_PREFIX)}
        for name in remove_project_containers(self.client, self.options.project):
            print(f"lambda runtime: removed {name}, left by a previous run", file=sys.stderr, flush=True)

    def new(self, spec: FunctionSpec, env_id: str, work_dir: Path, base_env: dict[str, str]) -> ContainerEnvironment:
        return ContainerEnvironment(
            spec,
            env_id=env_id,
            work_dir=work_dir,
            base_env=base_env,
            client=self.client,
            options=self.options,
            labels=self.labels,
        )

    def facts(self) -> dict[str, Any]:
        image: dict[str, Any] = {"name": self.options.image}
        with contextlib.suppress(*ENGINE_ERRORS):
            found = self.client.images.get(self.options.image)
            image.update(
                id=found.short_id, created=found.attrs.get("Created"), packages=found.labels.get(PACKAGES_LABEL)
            )
        running = []
        with contextlib.suppress(*ENGINE_ERRORS):
            running = self.client.containers.list(filters={"label": f"{PROJECT_LABEL}={self.options.project}"})
        if running:
            sample = running[0]
            limits = {
                "read_from": sample.name,
                "function": sample.labels.get(FUNCTION_LABEL),
                **limits_of(sample.attrs),
            }
        else:
            limits = {
                "read_from": "configuration (no environment running)",
                "memory_bytes": "MemorySize (memory+swap the same)",
                "vcpus": "MemorySize/1769, unlimited during INIT",
            }
        return {
            "environment_kind": "container",
            "cgroups": {"enforced": True, "version": "engine", "detail": self.detail},
            "containers": {"image": image, "network": self.options.network, "limits": limits},
        }
