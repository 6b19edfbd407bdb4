"""The measuring core on real time: against the real proxy, a known server-side delay comes back as the
percentile; on the system clock, runs keep their schedule and their bounds (lower bounds are exact, upper
ones tolerate a loaded machine). The exact arithmetic is checked on a virtual clock in tests/unit/test_load.py.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.measure.load import Limits, Request, plain_client, run_closed, run_open

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


def sleeping(seconds: float):
    return lambda _index: plain_client(lambda: time.sleep(seconds))


def test_a_closed_run_on_the_system_clock_ends_at_its_duration():
    result = run_closed(sleeping(0.005), clients=2, limits=Limits(duration_s=0.5, max_requests=10**9))
    # No request starts after the deadline, and time.sleep never returns early: at most 101 per client.
    assert 0.5 <= result.elapsed_s < 5.0
    assert 0 < result.ok <= 202


def test_an_open_run_on_the_system_clock_keeps_its_schedule():
    result = run_open(sleeping(0.002), rate_per_s=200, limits=Limits(duration_s=1.0, max_requests=10**6), workers=2)
    assert result.ok == 200
    # It cannot finish before the last request is due (199/200 s); load only makes it later.
    assert 0.995 <= result.elapsed_s < 7.0
