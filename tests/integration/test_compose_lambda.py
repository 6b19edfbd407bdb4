"""Lambda on the compose backend against a real Docker engine: each execution environment a container the
engine sizes, the GDPR functions running in them, and nothing left behind by `down`.

Skipped, with the reason, when no engine answers (`.ci/docker-engine` starts one). The stack is a throw-away
one (its own state directory, project and free ports), driven through the CLI a user runs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import zipfile

import pytest

from harness.app.gdpr_invoke import invoke, lambda_client
from harness.endpoints import StackEndpoints
from harness.lambda_runtime.container import PROJECT_LABEL
from harness.sizing import lambda_vcpu_share

pytestmark = [pytest.mark.integration, pytest.mark.compose]

MIB = 1024 * 1024
HOG = (
    "def handler(event, context):\n"
    "    block = bytearray(event['mb'] * 1024 * 1024)\n"
    "    for i in range(0, len(block), 4096):\n"
    "        block[i] = 1\n"
    "    return len(block)\n"
)
SLEEP = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n"


def function_containers(project: str, *extra: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={PROJECT_LABEL}={project}", *extra, "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


@pytest.fixture(scope="module")
def endpoints(compose_stack) -> StackEndpoints:
    found = compose_stack.endpoints()
    assert found.aws.lambda_url, "the compose stack has no Lambda runtime"
    return found


@pytest.fixture(scope="module")
def deployed(compose_stack, endpoints) -> StackEndpoints:
    seeded = compose_stack.harness("seed", "--profile", "ci", "--quiet", timeout=600)
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    done = compose_stack.harness("deploy", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return endpoints


def create(endpoints: StackEndpoints, name: str, code: str, memory_mb: int, timeout_s: int = 30) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", code)
    lambda_client(endpoints.aws).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/test",
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        MemorySize=memory_mb,
        Timeout=timeout_s,
    )
    return name


def test_the_export_runs_in_a_container_and_reports_the_containers_memory(deployed):
    with deployed.direct.connect() as conn:
        user_id = conn.execute("SELECT min(user_id) FROM app.users").fetchone()[0]
    result = invoke(lambda_client(deployed.aws), "data_export", {"user_id": user_id})
    # Through the forwarded proxy (TLS verified against 127.0.0.1), the emulator and its KMS key.
    assert result.function_error is None, result.payload
    assert result.payload["ok"] and result.payload["user_id"] == user_id
    assert result.report.memory_size_mb == 512
    assert 0 < result.report.max_memory_used_mb < 512


def test_the_engine_holds_memory_size_and_the_cpu_share_lambda_gives_it(deployed, compose_stack):
    # The export's environment is warm: its container is running, with the limits applied after INIT.
    ids = function_containers(compose_stack.project, "--filter", "label=dbunit-harness.lambda-function=data_export")
    assert ids, "no container for data_export"
    done = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=60, check=True)
    for container in json.loads(done.stdout):
        host = container["HostConfig"]
        assert host["Memory"] == host["MemorySwap"] == 512 * MIB
        assert host["CpuQuota"] / host["CpuPeriod"] == pytest.approx(lambda_vcpu_share(512), abs=1e-4)
        assert container["Config"]["User"] != "root"
        # Compose labelled the image with its project; the containers are not compose's.
        assert container["Config"]["Labels"].get("com.docker.compose.project") == ""


def test_status_shows_the_runtime_and_that_its_environments_are_containers(deployed, compose_stack):
    done = compose_stack.harness("status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    facts = status["facts"]["lambda"]
    assert facts["environment_kind"] == "container"
    assert facts["cgroups"]["enforced"] is True
    assert facts["containers"]["image"]["packages"].startswith("psycopg[binary]==")
    rows = {row["name"]: row for row in status["services"]}
    assert rows["lambda (containers)"]["healthy"]


def test_a_function_over_its_memory_size_is_killed_as_out_of_memory(endpoints, compose_stack):
    name = create(endpoints, "compose-hog", HOG, 128)
    killed = invoke(lambda_client(endpoints.aws), name, {"mb": 300})
    assert killed.function_error == "Unhandled"
    assert killed.payload["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in killed.payload["errorMessage"]
    assert (killed.report.status, killed.report.error_type) == ("error", "Runtime.OutOfMemory")
    assert killed.report.max_memory_used_mb == 128
    # The killed environment is gone; a modest invocation starts a new one.
    fits = invoke(lambda_client(endpoints.aws), name, {"mb": 16})
    assert fits.function_error is None and fits.payload == 16 * MIB
    assert fits.report.init_duration_ms is not None
    assert 16 <= fits.report.max_memory_used_mb < 128


def test_a_timeout_removes_the_container(endpoints, compose_stack):
    name = create(endpoints, "compose-sleep", SLEEP, 128, timeout_s=1)
    before = set(function_containers(compose_stack.project))
    result = invoke(lambda_client(endpoints.aws), name, {"s": 30})
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert set(function_containers(compose_stack.project)) <= before


def test_down_after_the_runtime_was_killed_leaves_no_function_container(endpoints, compose_stack):
    project = compose_stack.project
    invoke(lambda_client(endpoints.aws), "compose-hog", {"mb": 1})
    assert function_containers(project)
    # Killed outright, the runtime cannot remove its containers: `down` finds them by their label.
    record = json.loads((compose_stack.state_dir / "compose" / "run" / "lambda.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    done = compose_stack.harness("down", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "function container(s) left running" in done.stderr + done.stdout
    assert function_containers(project) == []
    assert function_containers(project, "--filter", f"label=com.docker.compose.project={project}") == []
