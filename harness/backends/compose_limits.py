"""The limits a compose container runs under, read back: what the engine was given (`docker inspect`) and
what the container's kernel holds (its own cgroup files).

Apart from the lifecycle because it answers a different question: not "is the stack up" but "does the
engine apply the sizing the compose file asks for", which a host without cgroup limits would silently ignore.
"""

from __future__ import annotations

import subprocess
from typing import Any

from harness.backends.compose_engine import docker_run, require_docker
from harness.services.cgroups import V1_UNLIMITED
from harness.services.process import ServiceError

# What a container's kernel holds, read inside it: cgroup v2 files, else v1's (the engine host's choice).
CGROUP_READ = (
    "if [ -f /sys/fs/cgroup/memory.max ]; then "
    "echo v2 $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max); else "
    "echo v1 $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) "
    "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi"
)


def parse_cgroup_read(text: str) -> dict[str, Any]:
    """CGROUP_READ's line as numbers: the memory limit in bytes and the CPU quota in vCPUs (None: unlimited)."""
    fields = text.split()
    if not fields or fields[0] not in ("v1", "v2") or len(fields) != 4:
        raise ValueError(f"unexpected cgroup read-back: {text.strip()!r}")
    version, memory, quota, period = fields
    unlimited_memory = memory == "max" or int(memory) >= V1_UNLIMITED
    unlimited_cpu = quota in ("max", "-1")
    return {
        "cgroup": version,
        "memory_bytes": None if unlimited_memory else int(memory),
        "vcpus": None if unlimited_cpu else int(quota) / int(period),
    }


def container_sizing(compose_of: Any) -> dict[str, dict[str, Any]]:
    """Per service: the limits the engine was given and what the container's kernel holds; empty when no
    engine answers. `compose_of(docker)` makes the project's DockerCompose."""
    try:
        docker = require_docker()
        containers = compose_of(docker).get_containers()
    except (ServiceError, subprocess.CalledProcessError, ValueError):
        return {}
    sizing: dict[str, dict[str, Any]] = {}
    for container in containers:
        inspect = docker_run(
            docker, "inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.Image}}", container.ID
        )
        kernel = docker_run(docker, "exec", container.ID, "sh", "-c", CGROUP_READ)
        if inspect.returncode != 0 or kernel.returncode != 0:
            continue
        memory_field, nano_cpus_field, image_id = inspect.stdout.split()
        memory, nano_cpus = int(memory_field), int(nano_cpus_field)
        sizing[container.Service] = {
            "image_id": image_id,
            "engine_memory_bytes": memory or None,
            "engine_vcpus": nano_cpus / 1e9 if nano_cpus else None,
            **parse_cgroup_read(kernel.stdout),
        }
    return sizing
