"""Backends by name; the configuration's `backend` setting picks one."""

from __future__ import annotations

from collections.abc import Callable

from harness.backends.base import Backend
from harness.backends.compose import ComposeBackend
from harness.backends.embedded import EmbeddedBackend
from harness.backends.external import ExternalBackend
from harness.config import ConfigError, Settings

BACKENDS: dict[str, Callable[[Settings], Backend]] = {
    "embedded": EmbeddedBackend,
    "compose": ComposeBackend,
    "external": ExternalBackend,
}


def get_backend(settings: Settings) -> Backend:
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ConfigError(
            f"backend {settings.backend!r} is not available in this version; available: {', '.join(BACKENDS)}"
        ) from None
    return factory(settings)
