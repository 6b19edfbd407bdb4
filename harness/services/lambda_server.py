"""The local Lambda runtime: the Lambda API on 127.0.0.1 with Lambda's memory, CPU and timeout limits.

The AWS emulator runs Python handlers but enforces no memory limit and reports no usable Max Memory
Used; this service runs each execution environment as a worker process sized like Lambda's or, for the
compose backend, as a container the engine sizes (see harness.lambda_runtime). Clients reach it through
AwsEndpoint.lambda_url (AWS_ENDPOINT_URL_LAMBDA).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.endpoints import AwsEndpoint
from harness.services.process import (
    HttpService,
    ensure_port_free,
    spawn,
    wait_until_ready,
)

NAME = "lambda"
# The runtime answers here when it is ready; the service's readiness probe and the server share it.
HEALTH_PATH = "/_harness/health"


@dataclass(kw_only=True)
class LambdaRuntimeService(HttpService):
    name: ClassVar[str] = NAME
    # SIGTERM makes the server kill its workers by PID and remove their cgroups before it exits;
    # stop_process then kills the process group, which the workers share, as a backstop.
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout_s: ClassVar[float] = 15.0
    state_dir: Path
    aws: AwsEndpoint
    concurrency: int
    cgroups: str
    cgroup_prefix: str
    run_as: str
    # "container": each environment is a container of `image` on `network`, labelled with `project`, with
    # the published ports `forward` names (<port>=<service>:<port>,...) relayed inside it.
    environments: str = "process"
    image: str = ""
    network: str = ""
    project: str = ""
    forward: str = ""

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}{HEALTH_PATH}", timeout=2) as response:
            return dict(json.loads(response.read()))

    def start(self) -> None:
        ensure_port_free(self.port, "the Lambda runtime", "lambda_port")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "harness.lambda_runtime.server",
            "--host", self.host,
            "--port", str(self.port),
            "--state-dir", str(self.state_dir),
            "--region", self.aws.region,
            "--aws-endpoint", self.aws.url,
            "--concurrency", str(self.concurrency),
            "--cgroups", self.cgroups,
            "--cgroup-prefix", self.cgroup_prefix,
            "--run-as", self.run_as,
            "--environments", self.environments,
        ]  # fmt: skip
        if self.environments == "container":
            command += ["--image", self.image, "--network", self.network, "--project", self.project]
            command += ["--forward", self.forward]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.aws.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws.secret_access_key.reveal(),
        }
        # The server stays root (it creates a cgroup per environment) and runs its workers as run_as.
        record = spawn(NAME, command, self.log_path, env=env, cwd=self.state_dir)
        self.pids.write(record)
        wait_until_ready(record, self.health, timeout_s=self.timeout_s, log_path=self.log_path, what="Lambda runtime")

    def facts(self) -> dict[str, Any]:
        health = self.health()
        return {"version": "local", "url": self.url, **health}
