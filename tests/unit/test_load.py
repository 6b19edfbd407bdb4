"""The measuring core, checked against latencies injected with known sizes."""

import threading
import time

import pytest

from harness.measure.load import Limits, LoadError, plain_client, run_closed, run_open


def count_above(histogram, micros: int) -> int:
    return sum(
        item.count_at_value_iterated_to for item in histogram.get_recorded_iterator() if item.value_iterated_to > micros
    )


def sleeper(seconds: float):
    def request():
        time.sleep(seconds)

    return lambda _index: plain_client(request)


def test_closed_model_measures_a_known_latency():
    result = run_closed(sleeper(0.010), clients=4, limits=Limits(duration_s=10, max_requests=200))
    assert result.ok == 200 and result.errors == 0
    # time.sleep overshoots by a fraction of a millisecond, never undershoots.
    assert 10.0 <= result.percentile_ms(50) < 13.0
    assert 10.0 <= result.percentile_ms(99) < 25.0
    # Four clients of 10 ms each: about 400 requests/s, far from a single client's 100.
    assert result.throughput > 250


def test_closed_model_stops_at_the_duration_bound():
    began = time.monotonic()
    result = run_closed(sleeper(0.005), clients=2, limits=Limits(duration_s=0.5, max_requests=10**9))
    assert time.monotonic() - began < 2.0
    assert 0 < result.ok < 400


def test_open_model_charges_a_stall_to_every_request_it_delayed():
    # 200 requests due at 100/s on one worker; request 50 stalls for 500 ms. Without correction one
    # request is slow; with it, the ~50 requests due during the stall each waited for it.
    calls = 0
    lock = threading.Lock()

    def request():
        nonlocal calls
        with lock:
            calls += 1
            mine = calls
        time.sleep(0.5 if mine == 50 else 0.001)

    result = run_open(lambda _i: plain_client(request), rate_per_s=100, limits=Limits(5, 200), workers=1)
    assert result.ok == 200
    assert count_above(result.service_time, 100_000) == 1
    assert 35 <= count_above(result.latency, 100_000) <= 55
    assert result.percentile_ms(99, corrected=False) < 50
    assert result.percentile_ms(100, corrected=True) >= 495


def test_open_model_keeps_the_rate_when_the_server_keeps_up():
    began = time.monotonic()
    result = run_open(sleeper(0.002), rate_per_s=200, limits=Limits(duration_s=1.0, max_requests=10**6), workers=2)
    elapsed = time.monotonic() - began
    assert result.ok == 200
    assert 0.9 <= elapsed < 1.5
    assert result.percentile_ms(50) < 10


def test_errors_are_counted_and_sampled_not_timed():
    def request():
        raise ConnectionError("too many clients already")

    result = run_closed(lambda _i: plain_client(request), clients=2, limits=Limits(5, 10))
    assert (result.ok, result.errors) == (0, 10)
    assert result.error_rate == 1.0
    assert "too many clients already" in result.error_samples[0]
    with pytest.raises(LoadError, match="no successful request"):
        result.percentile_ms(50)


def test_a_client_that_cannot_connect_is_an_error():
    def factory(_index):
        raise ConnectionRefusedError("refused")

    result = run_closed(factory, clients=3, limits=Limits(5, 10))
    assert result.errors == 3
    assert "client setup" in result.error_samples[0]


@pytest.mark.parametrize(("duration", "count"), [(0, 10), (-1, 10), (10, 0), (100_000, 1)])
def test_every_run_is_bounded(duration, count):
    with pytest.raises(LoadError):
        Limits(duration, count)
