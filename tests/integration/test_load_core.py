"""The measuring core against the real proxy: a known server-side delay comes back as the percentile."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.measure.load import Limits, Request, run_closed, run_open

pytestmark = pytest.mark.integration

SLEEP_S = 0.020


def sleeping_clients(endpoint):
    @contextmanager
    def factory(_index: int) -> Iterator[Request]:
        conn = endpoint.connect(autocommit=True, prepare_threshold=None)
        try:
            yield lambda: conn.execute("SELECT pg_sleep(%s)", (SLEEP_S,)).fetchone()
        finally:
            conn.close()

    return factory


def test_pg_sleep_through_the_proxy_is_measured_as_itself(stack):
    result = run_closed(sleeping_clients(stack.proxy), clients=4, limits=Limits(30, 80))
    assert result.ok == 80 and result.errors == 0
    # pg_sleep never returns early; loopback and the proxy add well under 10 ms.
    assert SLEEP_S * 1000 <= result.percentile_ms(50) < SLEEP_S * 1000 + 10
    assert result.percentile_ms(99) < SLEEP_S * 1000 + 40


def test_open_model_at_a_sustainable_rate_matches_the_closed_one(stack):
    # 2 workers x 20 ms can serve 100/s; asking 25/s leaves them idle between requests, so no queueing.
    result = run_open(sleeping_clients(stack.proxy), rate_per_s=25, limits=Limits(5, 50), workers=2)
    assert result.ok == 50
    assert result.percentile_ms(50) < SLEEP_S * 1000 + 10
