"""The secret grep: no password of the unit may appear in a log, report or results file of a run.

Every secret the stack generated (master, Redis, application role, and each version of the Secrets Manager
secrets, rotated ones included) is searched for, as written and URL-quoted, in every file under the given
roots. Findings name the file and which secret (by label), never the value. The files whose job is to hold
secrets (0600 state files and server configs) are not scanned: they are not outputs of a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.endpoints import StackEndpoints

# A generated secret is 24+ characters; shorter values (the emulator's "test" key) would match anything.
MIN_SECRET_CHARS = 12
MAX_FILE_BYTES = 256 * 1024 * 1024
# The state files that hold secrets on purpose (mode 0600), by name.
SECRET_HOLDERS = frozenset({"secrets.json", "app_role.json", "endpoints.json", "userlist.txt", "redis.conf"})


@dataclass(frozen=True)
class Leak:
    path: Path
    label: str

    def __str__(self) -> str:
        return f"{self.path}: contains {self.label}"


def _from_state(state_dir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, keys in (("secrets.json", ("master_password", "redis_password")), ("app_role.json", ("password",))):
        path = state_dir / name
        if path.is_file():
            raw = json.loads(path.read_text())
            found.update({f"{name}:{k}": str(raw[k]) for k in keys if k in raw})
    return found


def _from_secrets_manager(stack: StackEndpoints) -> dict[str, str]:
    sm = stack.aws.client("secretsmanager")
    found: dict[str, str] = {}
    for secret in sm.list_secrets().get("SecretList", []):
        versions = sm.list_secret_version_ids(SecretId=secret["ARN"]).get("Versions", [])
        for version in versions:
            value = sm.get_secret_value(SecretId=secret["ARN"], VersionId=version["VersionId"]).get("SecretString", "")
            try:
                document: Any = json.loads(value)
            except ValueError:
                document = {"value": value}
            if isinstance(document, dict) and document.get("password"):
                found[f"secret {secret['Name']} version {version['VersionId'][:8]}"] = str(document["password"])
    return found


def known_secrets(state_dir: Path, stack: StackEndpoints | None = None) -> dict[str, str]:
    """label -> value of every secret the unit holds, long enough to search for."""
    found = _from_state(state_dir)
    if stack is not None:
        found.update({"proxy password": stack.proxy.password.reveal(), "redis password": stack.redis.password.reveal()})
        found.update(_from_secrets_manager(stack))
    return {label: value for label, value in found.items() if len(value) >= MIN_SECRET_CHARS}


def _files(roots: Iterable[Path]) -> Iterable[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file() and p.name not in SECRET_HOLDERS)


def scan(roots: Iterable[Path], secrets: dict[str, str]) -> tuple[int, list[Leak]]:
    """(files scanned, leaks) for these roots (files or directories)."""
    needles = {
        label: {value.encode(), quote(value, safe="").encode(), json.dumps(value)[1:-1].encode()}
        for label, value in secrets.items()
    }
    count, leaks = 0, []
    for path in _files(roots):
        if path.stat().st_size > MAX_FILE_BYTES:
            continue
        data = path.read_bytes()
        count += 1
        leaks += [Leak(path, label) for label, forms in needles.items() if any(form in data for form in forms)]
    return count, leaks
