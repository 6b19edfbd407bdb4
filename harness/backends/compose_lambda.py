"""The compose backend's Lambda runtime: the embedded stack's runtime, on the host, with container environments.

The runtime (harness.lambda_runtime) runs on 127.0.0.1:lambda_port as on the embedded stack and reaches
clients through AwsEndpoint.lambda_url; only its execution environments differ: each is a container of the
image compose/lambda/Dockerfile builds, sized by the engine (MemorySize, MemorySize/1769 CPUs), on the
compose project's network, with the unit's published ports forwarded inside it (lambda_runtime/sandbox.py
says why). It runs on the host rather than as a compose service because it starts containers: as a service
it would need the engine's socket (root on the host, in effect) and host paths for the code it mounts.

`down` stops it by PID (its SIGTERM handler removes its containers), then removes every container still
labelled with the project, as a runtime killed outright leaves them running, before compose removes the
network they joined.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.backends.base import Reporter, ServiceStatus
from harness.backends.compose_spec import IMAGES, PORT_VARS, SERVICE_PORTS
from harness.config import Settings
from harness.endpoints import AwsEndpoint
from harness.lambda_runtime.environment import EnvironmentFailure
from harness.lambda_runtime.sandbox import format_forwards
from harness.services.lambda_server import NAME, LambdaRuntimeService
from harness.services.process import PidFiles, ServiceError, ensure_port_free, stop_process

RUNTIME_STATE = "lambda"
ROW = "lambda (containers)"
# The compose network every service is on: compose names it <project>_default.
NETWORK_SUFFIX = "_default"


def published_forwards(values: Mapping[str, str]) -> dict[int, tuple[str, int]]:
    """Each published port (compose's values) -> the service and its port on the compose network."""
    return {int(values[PORT_VARS[setting]]): target for setting, target in SERVICE_PORTS.items()}


class ComposeLambda:
    """Start, stop and describe the runtime of one compose project (one state directory)."""

    def __init__(self, settings: Settings, work_dir: Path, project: str) -> None:
        self.settings = settings
        self.project = project
        self.pids = PidFiles(work_dir / "run")
        self.log_path = work_dir / "lambda.log"

    def service(self, aws: AwsEndpoint, forward: str = "") -> LambdaRuntimeService:
        s = self.settings
        return LambdaRuntimeService(
            state_dir=s.state_dir / RUNTIME_STATE,
            log_path=self.log_path,
            port=s.lambda_port,
            aws=aws,
            concurrency=s.lambda_concurrency,
            cgroups="off",
            cgroup_prefix=f"{self.project}-lambda",
            run_as=s.postgres_os_user,
            pids=self.pids,
            timeout_s=s.startup_timeout_s,
            environments="container",
            image=IMAGES["lambda"],
            network=self.project + NETWORK_SUFFIX,
            project=self.project,
            forward=forward,
        )

    def start(self, aws: AwsEndpoint, values: Mapping[str, str], report: Reporter) -> LambdaRuntimeService:
        """Start the runtime unless it already runs; return it (its url is the stack's lambda_url)."""
        service = self.service(aws, format_forwards(published_forwards(values)))
        if not service.is_running():
            service.start()
            report(f"lambda: runtime on {service.url}, each execution environment a container of {IMAGES['lambda']}")
        return service

    def stop(self, report: Reporter) -> None:
        record = self.pids.read(NAME)
        if record is not None:
            if stop_process(
                record, sig=LambdaRuntimeService.stop_signal, timeout_s=LambdaRuntimeService.stop_timeout_s
            ):
                report(f"lambda: stopped the runtime (pid {record.pid})")
            self.pids.remove(NAME)
        self.remove_containers(report)

    def check_port(self) -> None:
        """Before compose starts anything: the runtime's port is free, unless this runtime already holds it."""
        record = self.pids.read(NAME)
        if record is None or not record.is_alive():
            ensure_port_free(self.settings.lambda_port, "the compose stack's Lambda runtime", "lambda_port")

    def remove_containers(self, report: Reporter) -> None:
        from harness.lambda_runtime.container import ENGINE_ERRORS, engine_client, remove_project_containers

        try:
            removed = remove_project_containers(engine_client(), self.project)
        except (EnvironmentFailure, *ENGINE_ERRORS) as exc:
            raise ServiceError(f"could not remove the Lambda containers of project {self.project}: {exc}") from None
        if removed:
            report(f"lambda: removed {len(removed)} function container(s) left running: {', '.join(removed)}")

    def status(self, aws: AwsEndpoint) -> tuple[ServiceStatus, dict[str, Any]]:
        """The runtime's row for `harness status` and its facts (what the environments are, the image, the
        limits), from its health answer, read for real."""
        service = self.service(aws)
        url = aws.lambda_url or service.url
        record = service.record()
        pid = record.pid if record else None
        try:
            facts = service.health()
        except Exception as exc:
            detail = f"probe failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            return ServiceStatus(ROW, url, False, detail=detail, pid=pid), {}
        limits = facts.get("containers", {}).get("limits", {})
        sizing = f"concurrency {facts['concurrency_limit']}, {facts['environments']} running; {describe_limits(limits)}"
        return ServiceStatus(ROW, url, True, version="local", sizing=sizing, pid=pid), facts


def describe_limits(limits: Mapping[str, Any]) -> str:
    """One environment's limits as status shows them: read back from a container, or as configured."""
    memory, vcpus = limits.get("memory_bytes"), limits.get("vcpus")
    if isinstance(memory, int):
        cpu = f"{vcpus:.4g} vCPU" if isinstance(vcpus, float) else "CPU unlimited (INIT)"
        return f"engine holds {limits.get('read_from')}: {memory / 2**20:g} MiB, {cpu}"
    return f"per container: memory = MemorySize (no swap), {vcpus}"
