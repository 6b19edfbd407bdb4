"""The Docker engine as the compose backend meets it: the `docker` CLI, its errors and the image build.

Kept apart from the lifecycle (compose.py) because every failure here must end as one line that says what
to do (install Docker, start the engine, use another backend), and because the build's own concerns (its
failing step, the untagged images it leaves behind) have nothing to do with starting or stopping a stack.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from harness.backends.base import Reporter
from harness.backends.compose_spec import DEFAULT_PIP_CA, LAMBDA_PROFILE, PIP_CA_VAR, PROJECT_NAME
from harness.paths import COMPOSE_DIR
from harness.services.process import ServiceError

NO_DOCKER_HINT = "or use --backend embedded"
DOCKER_TIMEOUT_S = 20
# One compose command (up, down, logs, restart) against a stack of a handful of containers.
COMPOSE_TIMEOUT_S = DOCKER_TIMEOUT_S * 6
# A cold build installs Debian packages and downloads wheels; a warm one only checks the cache.
BUILD_TIMEOUT_S = 1800


def first_line(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else ""


def indented_tail(text: str | bytes | None, lines: int = 30) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    kept = (text or "").rstrip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept)


def docker_run(docker: str, *args: str, timeout_s: float = DOCKER_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """One `docker` command, its output captured; an engine that does not answer is a ServiceError."""
    try:
        return subprocess.run(
            [docker, *args], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(
            f"`docker {' '.join(args)}` did not answer within {timeout_s:.0f} s; check the Docker engine "
            f"(DOCKER_HOST, docker context), {NO_DOCKER_HINT}"
        ) from None
    except OSError as exc:
        raise ServiceError(f"cannot run {docker}: {exc}; reinstall Docker, {NO_DOCKER_HINT}") from None


def require_docker() -> str:
    """The docker CLI's path once an engine and the compose plugin answer; otherwise one clear line."""
    docker = shutil.which("docker")
    if docker is None:
        raise ServiceError(
            "the compose backend needs Docker, but there is no `docker` command on PATH; install Docker Engine "
            f"with its compose plugin (on Debian, as root: .ci/docker-engine), {NO_DOCKER_HINT}"
        )
    engine = docker_run(docker, "version", "--format", "{{.Server.Version}}")
    if engine.returncode != 0 or not engine.stdout.strip():
        reason = first_line(engine.stderr) or "`docker version` reported no server"
        raise ServiceError(
            f"no Docker engine answers ({reason}); start Docker (on Debian, as root: .ci/docker-engine installs "
            f"and starts one) or point DOCKER_HOST at a running engine, {NO_DOCKER_HINT}"
        )
    plugin = docker_run(docker, "compose", "version", "--short")
    if plugin.returncode != 0:
        raise ServiceError(
            f"the Docker engine answers but `docker compose` does not ({first_line(plugin.stderr)}); install "
            f"the Compose v2 plugin (Docker's docker-compose-plugin; on Debian bookworm, trixie's docker-compose, "
            f"which .ci/docker-engine installs), {NO_DOCKER_HINT}"
        )
    return docker


def compose_run(compose: Any, *args: str, timeout_s: float = COMPOSE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`docker compose <args>` with the files, env file and project of `compose` (testcontainers' DockerCompose)."""
    command = [*compose.compose_command_property, *args]
    try:
        return subprocess.run(
            command, cwd=COMPOSE_DIR, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`docker compose {' '.join(args)}` did not finish within {timeout_s:.0f} s") from None


def compose_failure(what: str, compose: Any, exc: subprocess.CalledProcessError) -> ServiceError:
    """A failed compose command as one error carrying its own output and the services' last log lines."""
    logs = compose_run(compose, "logs", "--no-color", "--tail", "30").stdout
    return ServiceError(
        f"`{what}` failed (exit {exc.returncode}):\n{indented_tail(exc.stderr)}"
        + (f"\n  last lines of `docker compose logs`:\n{indented_tail(logs)}" if logs.strip() else "")
    )


def host_ca_bundle() -> str:
    """The CA bundle this host's Python verifies TLS with, handed to pip inside the image builds."""
    for candidate in (os.environ.get(PIP_CA_VAR), ssl.get_default_verify_paths().cafile, DEFAULT_PIP_CA):
        if candidate and Path(candidate).is_file():
            return candidate
    import certifi

    return str(certifi.where())


def failing_build_step(output: str) -> str:
    """The BuildKit step (`#N [service stage k/n] RUN ...`) whose number the error lines carry."""
    steps: dict[str, str] = {}
    for line in output.splitlines():
        number, _, rest = line.partition(" ")
        if number.startswith("#") and rest.startswith("["):
            steps.setdefault(number, rest)
        elif number.startswith("#") and rest.startswith("ERROR"):
            return steps.get(number, rest)
    return ""


def build_images(compose: Any, report: Reporter, docker: str = "docker") -> None:
    """Build the images compose runs, through the build cache; a failure names the failing step."""
    report("compose: building the images from compose/*/Dockerfile (cached steps are reused)")
    began = time.monotonic()
    # The Lambda image's profile is never started by compose, but built with the others.
    done = compose_run(compose, "--profile", LAMBDA_PROFILE, "--progress", "plain", "build", timeout_s=BUILD_TIMEOUT_S)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        step = failing_build_step(output)
        raise ServiceError(
            f"`docker compose build` failed (exit {done.returncode})"
            + (f" at {step}" if step else "")
            + f"; last lines:\n{indented_tail(output, 20)}"
        )
    cached = output.count(" CACHED")
    report(f"compose: images ready in {time.monotonic() - began:.1f} s ({cached} steps cached)")
    remove_replaced_images(docker)


def remove_replaced_images(docker: str) -> None:
    """Compose labels each image with the project that built it, so a build from another state directory
    makes a new image (the same layers) and leaves the previous one untagged: remove those of this harness,
    and only those, whoever's project built them."""
    label = "com.docker.compose.project"
    listed = docker_run(docker, "images", "--quiet", "--filter", "dangling=true", "--filter", f"label={label}")
    ids = sorted(set(listed.stdout.split()))
    if not ids:
        return
    inspected = docker_run(
        docker, "image", "inspect", "--format", f'{{{{.Id}}}} {{{{index .Config.Labels "{label}"}}}}', *ids
    )
    replaced = [
        image
        for image, _, project in (line.partition(" ") for line in inspected.stdout.splitlines())
        # The harness's projects, and the file's own name for a stack started by hand.
        if project == PROJECT_NAME or project.startswith(f"{PROJECT_NAME}-")
    ]
    if replaced:
        # Best effort: an image a stopped container still uses stays, and is tried again next time.
        docker_run(docker, "image", "rm", *replaced)
