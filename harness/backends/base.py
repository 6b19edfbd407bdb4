"""The backend contract: what brings the Database Unit up, reports on it, and takes it down.

Lifecycle, the same for every backend:
- `up()` makes the stack reachable and returns its endpoints; calling it again on a healthy stack
  changes nothing and returns the same endpoints. On failure it leaves nothing half-started.
- `status()` probes every service for real (a query, a PING, an API call) and never changes anything.
- `down()` stops exactly what `up()` started (by PID, container or nothing at all for a deployment
  the harness does not own) and is safe to call when nothing runs.
- `endpoints()` reads the endpoints of a stack that is up, without probing, or None.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.endpoints import StackEndpoints

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    endpoint: str
    healthy: bool
    version: str = ""
    sizing: str = ""
    detail: str = ""
    pid: int | None = None
    # Its process is alive, whatever its probe said: a slow answer on a loaded machine is not a dead service.
    running: bool = False


@dataclass(frozen=True)
class StackStatus:
    backend: str
    services: list[ServiceStatus]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return bool(self.services) and all(s.healthy for s in self.services)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "healthy": self.healthy,
            "services": [asdict(s) for s in self.services],
            "facts": self.facts,
        }


class Backend(ABC):
    name: str

    @abstractmethod
    def up(self, report: Reporter) -> StackEndpoints: ...

    @abstractmethod
    def down(self, report: Reporter, purge: bool = False) -> None:
        """Stop what up() started; purge also deletes the state it kept (data, passwords)."""

    def can_restart(self, service: str) -> bool:
        """Whether `restart(service)` is possible: fault drills need a stack the harness owns."""
        return False

    def restart(self, service: str, report: Reporter) -> None:
        raise NotImplementedError(f"the {self.name} backend cannot restart {service}")

    def restart_with_credits(self, mode: str, report: Reporter) -> StackEndpoints:
        """Restart the database, its proxy and the cache node under cpu_credits `mode` (the sign-off's drained
        pass: `drained` restarts them cold and capped, the configured mode restores them)."""
        raise NotImplementedError(
            f"the {self.name} backend cannot restart the unit under other CPU credits (it needs the embedded one)"
        )

    def kill(self, service: str, report: Reporter) -> None:
        """SIGKILL the service's main process, as a crash would; `up()` brings it back (a fault drill)."""
        raise NotImplementedError(f"the {self.name} backend cannot kill {service}")

    @contextmanager
    def database_memory_raised(self, memory_bytes: int) -> Iterator[str]:
        """Lift the database's memory cap to `memory_bytes` for the block (a capacity sweep's index build that
        the class's own memory would make take hours); yields what was done, for the report."""
        yield f"the {self.name} backend cannot move the database's memory: the build ran within it"

    def container_sizing(self) -> dict[str, dict[str, Any]]:
        """Per container, the limits the engine was given and what the container's kernel holds; empty for a
        backend that runs no containers (a sign-off's report states them)."""
        return {}

    @abstractmethod
    def status(self) -> StackStatus: ...

    @abstractmethod
    def endpoints(self) -> StackEndpoints | None: ...
