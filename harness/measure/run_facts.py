"""The environment a report states: which stack, which versions, what sizing, whether caps held."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness.endpoints import StackEndpoints
from harness.paths import harness_version


def run_facts(stack: StackEndpoints, repo: Path | None = None) -> dict[str, Any]:
    """Facts for a results file's run section, from the endpoint file's facts and this machine."""
    facts = stack.facts
    pg, proxy, redis = facts.get("postgres", {}), facts.get("proxy", {}), facts.get("redis", {})
    versions = {
        "postgres": pg.get("version"),
        "pgvector": pg.get("pgvector_version"),
        "pgbouncer": proxy.get("version"),
        "redis": redis.get("version"),
        "aws_emulator": " ".join(
            str(v) for v in (facts.get("aws", {}).get("emulator"), facts.get("aws", {}).get("version")) if v
        ),
        "lambda_runtime": facts.get("lambda", {}).get("version"),
    }
    sizing = {
        "db_instance_class": pg.get("instance_class"),
        "max_connections": pg.get("max_connections"),
        "shared_buffers": pg.get("shared_buffers"),
        "work_mem": pg.get("work_mem"),
        "maintenance_work_mem": pg.get("maintenance_work_mem"),
        "effective_cache_size": pg.get("effective_cache_size"),
        "proxy_pool_size": proxy.get("pool_size"),
        "cache_node_type": redis.get("node_type"),
        "redis_maxmemory": redis.get("maxmemory"),
        "redis_maxmemory_policy": redis.get("maxmemory_policy"),
    }
    cgroups = {"postgres": facts.get("cgroup"), "lambda": facts.get("lambda", {}).get("cgroups")}
    return {
        **machine_facts(repo),
        "backend": stack.backend,
        # Absent figures (an external deployment reports fewer) are left out rather than shown as None.
        "versions": {k: v for k, v in versions.items() if v},
        "sizing": {k: v for k, v in sizing.items() if v is not None},
        "cgroups": {k: v for k, v in cgroups.items() if v},
        # A stack of containers names the image each service runs (their tags carry the versions).
        **({"images": facts["images"]} if facts.get("images") else {}),
        # cpu_credits mode, whether it is enforced (or "credits NOT enforced: why"), the storage caps.
        **({"credits": facts["credits"]} if facts.get("credits") else {}),
        # What the backend does not emulate, and why (the compose stack's backups, say).
        **({"not_emulated": facts["not_emulated"]} if facts.get("not_emulated") else {}),
    }


def machine_facts(repo: Path | None = None) -> dict[str, Any]:
    """Facts about this machine and checkout that a report should state, for the run section."""
    facts: dict[str, Any] = {
        "harness_version": harness_version(),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return facts
    if head.returncode == 0:
        facts["git_revision"] = head.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
    return facts
