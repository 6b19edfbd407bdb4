"""Helpers the hermetic unit tests share: a stack's endpoints built by hand, and threshold file text.

They are fixtures rather than importable names: pytest loads every conftest.py (tests/unit, tests/integration,
scenarios) as a module named `conftest`, so `from conftest import ...` would get whichever was loaded last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from harness.endpoints import AwsEndpoint, AwsResources, PostgresEndpoint, RedisEndpoint, Secret, StackEndpoints

ADMIN = "dbunit_admin"
# Characters a URL must escape, so tests of URLs and files see them survive.
ADMIN_PASSWORD = "p@ss/word"


def build_endpoints(*, proxy_user: str = ADMIN, proxy_password: str = ADMIN_PASSWORD, **changes: Any) -> StackEndpoints:
    """An embedded stack on the default ports (nothing listens there); `changes` replace whole fields.

    A `proxy_user` other than the admin is a proxy that logs in with the application's own role, as RDS
    Proxy does.
    """
    stack = StackEndpoints(
        backend="embedded",
        proxy=PostgresEndpoint("127.0.0.1", 16432, proxy_user, Secret(proxy_password), "dbunit"),
        direct=PostgresEndpoint("127.0.0.1", 15432, ADMIN, Secret(ADMIN_PASSWORD), "dbunit"),
        redis=RedisEndpoint("127.0.0.1", 16379, Secret("r3dis")),
        aws=AwsEndpoint("http://127.0.0.1:14566", "us-east-2", "test", Secret("test")),
        resources=AwsResources("bucket", "secret-id", "key-id"),
        facts={"postgres": {"max_connections": 112}},
    )
    return replace(stack, **changes)


@pytest.fixture
def make_endpoints() -> Callable[..., StackEndpoints]:
    return build_endpoints


@pytest.fixture
def endpoints() -> StackEndpoints:
    return build_endpoints()


@dataclass(frozen=True)
class ThresholdText:
    """Entries of a thresholds file in the shipped defaults' format, and the file around them."""

    cpu: str = """\
  - metric: rds.cpu_pct
    warning: mean < 70%
    critical: mean < 90%
    unit: "%"
    source: Health Monitoring
"""
    cache_hit_rate: str = """\
  - metric: cache.hit_rate_pct
    warning: rate >= 70%
    critical: rate >= 50%
    unit: "%"
    source: Health Monitoring
"""
    evictions: str = """\
  - metric: cache.evictions
    warning: count == 0
    unit: none
    source: ours
"""
    proxy_acquire: str = """\
  - metric: proxy.acquire_ms
    warning: p95 < 25ms
    critical: p95 < 0.1s
    unit: ms
    source: ours
"""

    def file(self, *entries: str) -> str:
        return "schema_version: 1\nthresholds:\n" + "".join(entries)


@pytest.fixture
def threshold_text() -> ThresholdText:
    return ThresholdText()
