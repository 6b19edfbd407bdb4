"""The guard in front of destructive work (fault drills, deleting users, flushing the cache): it runs on the
harness's own stacks, and against an external deployment only when this run was explicitly allowed to.

Scenarios, Locust workloads and drills call `require_destructive_allowed` before they change anything.
"""

from __future__ import annotations

from harness.config import ConfigError, Settings, resolve_settings
from harness.endpoints import StackEndpoints

EXTERNAL_BACKEND = "external"
ALLOW_DESTRUCTIVE_HINT = "set HARNESS_ALLOW_DESTRUCTIVE=1 (or allow_destructive = true in harness.toml)"


class DestructiveRefusedError(ConfigError):
    """A destructive scenario was about to run against a deployment nobody allowed it to change."""


def refuses_destructive(settings: Settings, backend: str | None = None) -> bool:
    """True when a destructive scenario must not run: the target is not the harness's own and nobody allowed it."""
    return (backend or settings.backend) == EXTERNAL_BACKEND and not settings.allow_destructive


def require_destructive_allowed(
    target: Settings | StackEndpoints, what: str = "this destructive scenario", settings: Settings | None = None
) -> None:
    """Raise DestructiveRefusedError unless `what` may change data on the target.

    Given endpoints, the permission is read from `settings` or, without them, resolved now (environment
    and harness.toml), so it is the permission of this run, not of whoever wrote an endpoint file.
    """
    if isinstance(target, StackEndpoints):
        backend = target.backend
        settings = settings if settings is not None else resolve_settings()
        where = f"the external deployment at {target.proxy.host}"
    else:
        backend, settings = target.backend, target
        where = f"the external deployment described in {target.external_config}"
    if refuses_destructive(settings, backend):
        raise DestructiveRefusedError(
            f"refusing to run {what} against {where}: it would change or delete real data. "
            f"If that is intended, {ALLOW_DESTRUCTIVE_HINT} for this run."
        )
