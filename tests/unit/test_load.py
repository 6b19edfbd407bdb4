"""The measuring core, checked against latencies injected with known sizes.

Time is virtual here (a `Clock` that moves only when a request or the scheduler sleeps), so the figures are
exact whatever else the shared machine is doing. Real time with real threads is covered by the integration
tests of the load core.
"""

import threading

import pytest

from harness.measure.load import (
    Clock,
    Limits,
    LoadError,
    PercentileWatch,
    Precision,
    RatePrecision,
    RateWatch,
    plain_client,
    run_closed,
    run_open,
)
from harness.measure.results import new_histogram


class VirtualClock:
    """Seconds that pass only when someone sleeps; one worker's run is then fully deterministic."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += max(0.0, seconds)

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, sleep=self.sleep)


def count_above(histogram, micros: int) -> int:
    return sum(
        item.count_at_value_iterated_to for item in histogram.get_recorded_iterator() if item.value_iterated_to > micros
    )


def sleeper(clock: VirtualClock, seconds: float):
    return lambda _index: plain_client(lambda: clock.sleep(seconds))


def test_closed_model_measures_a_known_latency():
    time = VirtualClock()
    result = run_closed(sleeper(time, 0.010), clients=1, limits=Limits(10, 200), clock=time.clock())
    assert (result.ok, result.errors) == (200, 0)
    assert result.percentile_ms(50) == pytest.approx(10.0, rel=1e-3)
    assert result.percentile_ms(100) == pytest.approx(10.0, rel=1e-3)
    assert result.throughput == pytest.approx(100.0)


def test_closed_model_stops_at_the_duration_bound():
    time = VirtualClock()
    # 1/128 s is exact in binary: the 64th request ends exactly at the deadline, so no 65th starts.
    result = run_closed(sleeper(time, 1 / 128), clients=1, limits=Limits(0.5, 10**9), clock=time.clock())
    assert result.ok == 64
    assert result.elapsed_s == 0.5
    assert result.capped and "capped" in result.summary()


def test_closed_model_stops_at_the_request_bound():
    time = VirtualClock()
    result = run_closed(sleeper(time, 0.001), clients=3, limits=Limits(10, 25), clock=time.clock())
    assert result.ok == 25
    assert not result.capped


def test_closed_clients_run_at_the_same_time():
    # Each client's first request waits until all four are in flight; a core that ran clients one after
    # another would break the barrier instead.
    barrier = threading.Barrier(4, timeout=30)
    met: set[str] = set()

    def factory(_index: int):
        def request() -> None:
            name = threading.current_thread().name
            if name not in met:
                met.add(name)
                barrier.wait()

        return plain_client(request)

    result = run_closed(factory, clients=4, limits=Limits(60, 40))
    assert (result.ok, result.errors) == (40, 0)
    assert len(met) == 4


def test_open_model_charges_a_stall_to_every_request_it_delayed():
    # 200 requests due at 100/s on one worker; the 50th (due at 0.49 s) stalls for 500 ms, the others
    # take 1 ms. The backlog then drains at 1 ms a request while new ones fall due every 10 ms: the
    # request due at k/100 s ends at 0.99 + (k - 49)/1000 s, which is over 100 ms late for k = 50..93.
    # Service time sees one slow request; the corrected latency charges the stall to all 45.
    time = VirtualClock()
    calls = 0

    def request():
        nonlocal calls
        calls += 1
        time.sleep(0.5 if calls == 50 else 0.001)

    result = run_open(
        lambda _i: plain_client(request), rate_per_s=100, limits=Limits(5, 200), workers=1, clock=time.clock()
    )
    assert result.ok == 200
    assert count_above(result.service_time, 100_000) == 1
    assert count_above(result.latency, 100_000) == 45
    assert result.percentile_ms(99, corrected=False) == pytest.approx(1.0, rel=1e-3)
    assert result.percentile_ms(100, corrected=True) == pytest.approx(500.0, rel=1e-3)


def test_open_model_keeps_the_rate_when_the_server_keeps_up():
    time = VirtualClock()
    result = run_open(sleeper(time, 0.002), rate_per_s=200, limits=Limits(1.0, 10**6), workers=1, clock=time.clock())
    assert result.ok == 200
    # The last request is due at 199/200 s and takes 2 ms; none waited for another.
    assert result.elapsed_s == pytest.approx(0.997)
    assert result.percentile_ms(100) == pytest.approx(2.0, rel=1e-3)


def test_open_model_stops_sending_to_a_server_that_stalls_past_its_hard_deadline():
    # 10 requests due over 1 s, each taking 3 s: nothing is sent after 2 x 1 s + 5 s, so the
    # requests sent at 0, 3 and 6 s are all there is.
    time = VirtualClock()
    result = run_open(sleeper(time, 3.0), rate_per_s=10, limits=Limits(1.0, 1000), workers=1, clock=time.clock())
    assert result.ok == 3
    assert result.elapsed_s == pytest.approx(9.0)
    assert result.capped


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


def varying_sleeper(clock: VirtualClock, seconds: list[float]):
    """Latencies drawn in turn from `seconds`: a known distribution on the virtual clock."""
    position = iter(range(10**9))
    return lambda _index: plain_client(lambda: clock.sleep(seconds[next(position) % len(seconds)]))


def test_a_step_stops_once_its_percentile_is_known_to_the_stated_precision():
    time = VirtualClock()
    latencies = [0.010 + 0.0001 * (i % 100) for i in range(100)]  # 10..19.9 ms, uniform
    precision = Precision(95, relative=0.02, min_requests=200, check_every=50)
    result = run_closed(
        varying_sleeper(time, latencies), clients=1, limits=Limits(1000, 50_000, precision), clock=time.clock()
    )
    assert result.stopped_early is not None and "p95 known to" in result.stopped_early
    assert 200 <= result.ok < 50_000
    assert result.percentile_ms(95) == pytest.approx(19.5, rel=0.03)


def test_a_step_whose_percentile_stays_uncertain_runs_to_its_cap():
    time = VirtualClock()
    # Half the requests 1 ms, half 100 ms: the p50 straddles a gap and never narrows to 1%.
    precision = Precision(50, relative=0.01, min_requests=100, check_every=50)
    result = run_closed(
        varying_sleeper(time, [0.001, 0.100]), clients=1, limits=Limits(1000, 2_000, precision), clock=time.clock()
    )
    assert result.stopped_early is None
    assert result.ok == 2_000


def test_no_step_stops_before_its_minimum_request_count():
    time = VirtualClock()
    precision = Precision(95, relative=0.5, min_requests=300, check_every=10)
    result = run_closed(sleeper(time, 0.005), clients=1, limits=Limits(1000, 10_000, precision), clock=time.clock())
    assert result.stopped_early is not None
    assert 300 <= result.ok <= 310


@pytest.mark.parametrize(("percentile", "relative"), [(0, 0.05), (100, 0.05), (95, 0), (95, 1.5)])
def test_a_meaningless_precision_is_refused(percentile, relative):
    with pytest.raises(LoadError):
        Precision(percentile, relative)


def test_a_step_stops_once_a_histogram_it_fills_itself_is_known_to_the_precision():
    time = VirtualClock()
    acquired = new_histogram()
    lock = threading.Lock()
    counter = iter(range(10**9))

    def request() -> None:
        # The step's own figure (an acquisition time) differs from the request latency the core times.
        with lock:
            acquired.record_value(1000 + 10 * (next(counter) % 100))
        time.sleep(0.001)

    watch = PercentileWatch(Precision(95, relative=0.02, min_requests=300, check_every=50), acquired, lock, "acquire")
    limits = Limits(1000, 50_000, stop_when=watch)
    result = run_closed(lambda _i: plain_client(request), clients=1, limits=limits, clock=time.clock())
    assert result.stopped_early is not None and result.stopped_early.startswith("acquire p95 known to")
    assert 300 <= result.ok < 50_000 and acquired.get_total_count() == result.ok


def test_a_hit_rate_stops_its_step_once_known_to_the_points_asked_and_not_before_its_minimum():
    time = VirtualClock()
    counts = {"hits": 0, "reads": 0}

    def request() -> None:
        counts["reads"] += 1
        counts["hits"] += counts["reads"] % 5 != 0  # 80 % hits
        time.sleep(0.001)

    watch = RateWatch(
        RatePrecision(1.0, min_trials=2000, check_every=100), lambda: (counts["hits"], counts["reads"]), "hits"
    )
    result = run_closed(
        lambda _i: plain_client(request), clients=1, limits=Limits(1000, 100_000, stop_when=watch), clock=time.clock()
    )
    assert result.stopped_early is not None and "hits known to +/-" in result.stopped_early
    # +/-1 point at 80 %: about 1.96^2 x 0.16 / 0.0001 = 6,150 reads.
    assert 6_000 <= result.ok <= 6_400
    tight = RateWatch(RatePrecision(1.0, min_trials=20_000), lambda: (counts["hits"], counts["reads"]), "hits")
    counts.update(hits=0, reads=0)
    result = run_closed(
        lambda _i: plain_client(request), clients=1, limits=Limits(1000, 100_000, stop_when=tight), clock=time.clock()
    )
    assert 20_000 <= result.ok <= 20_001


@pytest.mark.parametrize("points", [0, 50, -1])
def test_a_meaningless_rate_precision_is_refused(points):
    with pytest.raises(LoadError):
        RatePrecision(points)
