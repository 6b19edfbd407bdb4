"""pytest plugin: the `stack` fixture.

With the stack up (`make up`), tests use it and leave it running. With it down, the plugin starts
the configured backend for the session and stops it afterwards, so `pytest` alone works.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from harness.backends import get_backend
from harness.config import Settings, resolve_settings
from harness.endpoints import StackEndpoints


def _report(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def harness_settings() -> Settings:
    return resolve_settings()


@pytest.fixture(scope="session")
def stack(harness_settings: Settings) -> Iterator[StackEndpoints]:
    backend = get_backend(harness_settings)
    endpoints = backend.endpoints()
    if endpoints is not None and backend.status().healthy:
        yield endpoints
        return
    endpoints = backend.up(_report)
    try:
        yield endpoints
    finally:
        backend.down(_report)
