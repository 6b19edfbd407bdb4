"""pytest plugin: the `stack` fixture.

With the stack up (`make up`), tests use it and leave it running. With it down, the plugin starts
the configured backend for the session and stops it afterwards, so `pytest` alone works.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.config import Settings, resolve_settings
from harness.endpoints import StackEndpoints


def _report(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in an ini file: the packaged scenarios run without the checkout's pyproject.toml.
    config.addinivalue_line(
        "markers", "integration: needs the embedded stack (real PostgreSQL, PgBouncer, Redis, AWS emulator)"
    )


@pytest.fixture(scope="session")
def harness_settings() -> Settings:
    return resolve_settings()


@contextmanager
def using_stack(backend: Backend) -> Iterator[StackEndpoints]:
    """The running stack, started for the duration if it is down and stopped after only then."""
    endpoints = backend.endpoints()
    status = backend.status()
    if endpoints is not None and status.healthy:
        yield endpoints
        return
    # A stack whose services are alive but slow to answer their probes (a loaded machine) is the user's:
    # bring back what is down, and leave it running at the end, as a healthy one is left.
    ours = endpoints is None or not any(s.healthy or s.running for s in status.services)
    endpoints = backend.up(_report)
    try:
        yield endpoints
    finally:
        if ours:
            backend.down(_report)


@pytest.fixture(scope="session")
def stack(harness_settings: Settings) -> Iterator[StackEndpoints]:
    with using_stack(get_backend(harness_settings)) as endpoints:
        yield endpoints
