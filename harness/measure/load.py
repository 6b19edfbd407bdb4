"""The measuring core: closed and open load models whose latencies land in HDR histograms.

Closed model: N clients, each issuing its next request as soon as the last returns. It measures what
N busy clients get, and by construction it slows down when the server does (a stall hides itself).

Open model: requests are due at a constant rate whatever the server does, and each latency is taken
from the request's *intended* start (wrk2's coordinated-omission correction): when the server stalls,
every request that should have been sent during the stall is charged the time it waited. The service
time (from the actual send) is kept beside it, so the two can be compared.

Every run is bounded twice, by duration and by request count; whichever comes first ends it. A closed
run may also stop as soon as its judged percentile is known well enough (`Precision`), or as soon as a
figure the step collects itself is (`Limits.stop_when`: a `PercentileWatch` over its own histogram, a
`RateWatch` over its hit counts): a step then takes as long as its conclusion needs, not as long as its cap.
Time is read and waited for through a `Clock`: the system's in every real run, a virtual one in tests, so
the scheduling arithmetic is checked exactly however loaded the machine is.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from harness.measure.confidence import percentile_interval, relative_half_width, wilson_interval
from harness.measure.results import new_histogram

# One request: raises on failure. A client is built per worker so each owns its connection. A request that
# returns a str names what it did (a workload's statement id): its latency is also kept under that label.
Request = Callable[[], object]
ClientFactory = Callable[[int], AbstractContextManager[Request]]
# Names the kind of a failure (a refused connection, a timeout...) so they can be counted apart.
Classifier = Callable[[BaseException], str]
MAX_ERROR_SAMPLES = 5
MICROS = 1_000_000


class LoadError(ValueError):
    pass


@dataclass(frozen=True)
class Clock:
    """Where the core reads the time (seconds, any origin) and waits."""

    now: Callable[[], float]
    sleep: Callable[[float], None]


SYSTEM_CLOCK = Clock(now=time.perf_counter, sleep=time.sleep)


@dataclass(frozen=True)
class Precision:
    """Stop once the `percentile` of the latencies so far is known to within `relative` (half its 95 %
    interval, as a fraction of the value), after at least `min_requests`. Checked every `check_every`
    requests; the run's Limits still cap it."""

    percentile: float
    relative: float
    min_requests: int = 400
    check_every: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.percentile < 100:
            raise LoadError(f"percentile must be in (0, 100), got {self.percentile}")
        if not 0 < self.relative < 1:
            raise LoadError(f"relative precision must be in (0, 1), got {self.relative}")
        if self.min_requests <= 0 or self.check_every <= 0:
            raise LoadError("min_requests and check_every must be positive")

    def describe(self) -> str:
        return f"p{self.percentile:g} to within +/-{100 * self.relative:g}% (95% interval)"


# Asked before each request of a closed run: a reason to stop now, or None. It reads figures the step
# collects itself (acquisition times, hit counts), so it must be cheap and thread-safe.
StopCheck = Callable[[], str | None]


def percentile_settled(histogram: HdrHistogram, precision: Precision, unit_per_ms: float = 1000) -> str | None:
    """A reason to stop when the histogram's percentile is known to within the precision, else None."""
    n = histogram.get_total_count()
    if n < precision.min_requests:
        return None
    p = precision.percentile
    value = histogram.get_value_at_percentile(p)
    interval = percentile_interval(n, p, lambda rank: histogram.get_value_at_percentile(100.0 * rank / n))
    half = relative_half_width(interval, value)
    if half > precision.relative:
        return None
    return (
        f"p{p:g} known to +/-{100 * half:.1f}% after {n:,} samples "
        f"(95% interval {interval[0] / unit_per_ms:.3g}..{interval[1] / unit_per_ms:.3g} ms)"
    )


class PercentileWatch:
    """A StopCheck on a histogram the step fills itself (microseconds), read under the step's lock."""

    def __init__(self, precision: Precision, histogram: HdrHistogram, lock: threading.Lock, what: str) -> None:
        self.precision = precision
        self.histogram = histogram
        self.lock = lock
        self.what = what
        self.next_check = precision.min_requests

    def __call__(self) -> str | None:
        with self.lock:
            if self.histogram.get_total_count() < self.next_check:
                return None
            self.next_check = self.histogram.get_total_count() + self.precision.check_every
            reason = percentile_settled(self.histogram, self.precision)
        return f"{self.what} {reason}" if reason else None


@dataclass(frozen=True)
class RatePrecision:
    """Stop once a rate (a hit rate) is known to within `points` percentage points (half its 95 % Wilson
    interval), after at least `min_trials`; checked every `check_every` trials."""

    points: float
    min_trials: int = 5000
    check_every: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.points < 50:
            raise LoadError(f"rate precision must be in (0, 50) percentage points, got {self.points}")
        if self.min_trials <= 0 or self.check_every <= 0:
            raise LoadError("min_trials and check_every must be positive")

    def describe(self) -> str:
        return f"rate to within +/-{self.points:g} percentage points (95% Wilson interval)"


class RateWatch:
    """A StopCheck on hit counts the step keeps itself: `counts()` returns (hits, trials) so far."""

    def __init__(self, precision: RatePrecision, counts: Callable[[], tuple[int, int]], what: str) -> None:
        self.precision = precision
        self.counts = counts
        self.what = what
        self.next_check = precision.min_trials

    def __call__(self) -> str | None:
        hits, trials = self.counts()
        if trials < self.next_check:
            return None
        self.next_check = trials + self.precision.check_every
        low, high = wilson_interval(hits, trials)
        half = 100 * (high - low) / 2
        if half > self.precision.points:
            return None
        return (
            f"{self.what} known to +/-{half:.2f} points after {trials:,} reads "
            f"(95% interval {100 * low:.2f}..{100 * high:.2f} %)"
        )


@dataclass(frozen=True)
class Limits:
    duration_s: float
    max_requests: int
    precision: Precision | None = None
    stop_when: StopCheck | None = None

    def __post_init__(self) -> None:
        if not 0 < self.duration_s <= 24 * 3600:
            raise LoadError(f"duration_s must be in (0, 86400], got {self.duration_s}")
        if self.max_requests <= 0:
            raise LoadError(f"max_requests must be positive, got {self.max_requests}")


@dataclass
class LoadResult:
    model: str
    clients: int
    # Microseconds, as results.new_histogram() expects. In the open model: from the intended start.
    latency: HdrHistogram = field(default_factory=new_histogram)
    # From the actual send; in the closed model the same as `latency`, to within the ticket's lock.
    service_time: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    target_rate: float | None = None
    # Latency (as `latency`) and failures per label a request returned or raised under (see Request).
    by_label: dict[str, HdrHistogram] = field(default_factory=dict)
    errors_by_label: dict[str, int] = field(default_factory=dict)
    # Why the run ended before its limits, when a Precision stopped it.
    stopped_early: str | None = None
    # True when the run ended at its time limit with requests still to send: its figures are those of a
    # shorter run than asked for (a drained unit's steps end this way), and the report says so.
    capped: bool = False

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        total = self.ok + self.errors
        return self.errors / total if total else 0.0

    def percentile_ms(self, percentile: float, corrected: bool = True) -> float:
        histogram = self.latency if corrected else self.service_time
        if histogram.get_total_count() == 0:
            raise LoadError("no successful request was measured, so there is no percentile")
        return float(histogram.get_value_at_percentile(percentile)) / 1000

    def summary(self) -> str:
        if self.ok == 0:
            return f"{self.model}: 0 ok, {self.errors} errors ({'; '.join(self.error_samples)})"
        return (
            f"{self.model} x{self.clients}: {self.ok} ok, {self.errors} errors in {self.elapsed_s:.1f} s "
            f"({self.throughput:.0f}/s); p50 {self.percentile_ms(50):.2f} ms, p95 {self.percentile_ms(95):.2f} ms, "
            f"p99 {self.percentile_ms(99):.2f} ms"
            + (f"; stopped early: {self.stopped_early}" if self.stopped_early else "")
            + ("; capped: its time limit ended it" if self.capped else "")
        )


class _Watch:
    """The latencies so far in one shared histogram, for a Precision to judge while the run goes."""

    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self.histogram = new_histogram()
        self.lock = threading.Lock()
        self.next_check = precision.min_requests

    def record(self, seconds: float) -> None:
        with self.lock:
            _record(self.histogram, seconds)

    def settled(self) -> str | None:
        """A reason to stop, or None while the percentile is not yet known well enough."""
        with self.lock:
            n = self.histogram.get_total_count()
            if n < self.next_check:
                return None
            self.next_check = n + self.precision.check_every
            return percentile_settled(self.histogram, self.precision)


class _Collector:
    """Per-worker histograms, merged at the end: no lock on the hot path."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        self.lock = threading.Lock()

    def merge(self, worker: _WorkerTally) -> None:
        with self.lock:
            self.result.latency.add(worker.latency)
            self.result.service_time.add(worker.service)
            self.result.ok += worker.ok
            self.result.errors += sum(worker.kinds.values())
            for kind, count in worker.kinds.items():
                self.result.errors_by_kind[kind] = self.result.errors_by_kind.get(kind, 0) + count
            for label, histogram in worker.by_label.items():
                self.result.by_label.setdefault(label, new_histogram()).add(histogram)
            for label, count in worker.errors_by_label.items():
                self.result.errors_by_label[label] = self.result.errors_by_label.get(label, 0) + count
            room = MAX_ERROR_SAMPLES - len(self.result.error_samples)
            self.result.error_samples.extend(worker.samples[:room])


def _type_name(exc: BaseException) -> str:
    return type(exc).__name__


@dataclass
class _WorkerTally:
    classify: Classifier
    latency: HdrHistogram = field(default_factory=new_histogram)
    service: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    by_label: dict[str, HdrHistogram] = field(default_factory=dict)
    errors_by_label: dict[str, int] = field(default_factory=dict)

    def failed(self, exc: BaseException, context: str = "") -> None:
        label = getattr(exc, "request_label", None)
        if isinstance(label, str):
            self.errors_by_label[label] = self.errors_by_label.get(label, 0) + 1
        kind = self.classify(exc)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"{context}{type(exc).__name__}: {exc}".strip()[:300])


def _record(histogram: HdrHistogram, seconds: float) -> None:
    histogram.record_value(max(1, round(seconds * MICROS)))


def _run_workers(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,), name=f"load-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Progress:
    """A line on stderr every few seconds while a run goes: long runs show they are alive."""

    def __init__(self, label: str, result: LoadResult, counter: Callable[[], int], enabled: bool) -> None:
        self.label, self.result, self.counter, self.enabled = label, result, counter, enabled
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        began = time.monotonic()
        while not self.stop.wait(5.0):
            done = self.counter()
            elapsed = time.monotonic() - began
            print(f"  {self.label}: {done} requests in {elapsed:.0f} s ({done / elapsed:.0f}/s)", file=sys.stderr)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        if self.enabled:
            self.thread.start()
        try:
            yield
        finally:
            self.stop.set()


def _drive(
    result: LoadResult,
    client_factory: ClientFactory,
    take_ticket: Callable[[], float | None],
    issued: Callable[[], int],
    *,
    label: str,
    progress: bool,
    classify: Classifier,
    clock: Clock,
    watch: _Watch | None = None,
) -> LoadResult:
    """Run `result.clients` workers until take_ticket() returns None. Each ticket is the request's
    intended start (clock.now() time); latency counts from it, service time from the actual send."""
    collector = _Collector(result)
    began = clock.now()

    def worker(index: int) -> None:
        tally = _WorkerTally(classify)
        try:
            with client_factory(index) as request:
                while (intended := take_ticket()) is not None:
                    wait = intended - clock.now()
                    if wait > 0:
                        clock.sleep(wait)
                    start = clock.now()
                    try:
                        outcome = request()
                    except Exception as exc:
                        tally.failed(exc)
                        continue
                    end = clock.now()
                    if isinstance(outcome, str):
                        _record(tally.by_label.setdefault(outcome, new_histogram()), end - intended)
                    _record(tally.latency, end - intended)
                    if watch is not None:
                        watch.record(end - intended)
                    _record(tally.service, end - start)
                    tally.ok += 1
        except Exception as exc:
            # The client could not even be built (a refused connection, say): that is one error too.
            tally.failed(exc, "client setup: ")
        collector.merge(tally)

    with _Progress(label, result, issued, progress).running():
        _run_workers(result.clients, worker)
    result.elapsed_s = clock.now() - began
    return result


def run_closed(
    client_factory: ClientFactory,
    clients: int,
    limits: Limits,
    *,
    label: str = "closed",
    progress: bool = False,
    classify: Classifier = _type_name,
    clock: Clock = SYSTEM_CLOCK,
) -> LoadResult:
    """`clients` workers, each sending its next request when the last one returns."""
    if clients <= 0:
        raise LoadError(f"clients must be positive, got {clients}")
    issued = 0
    lock = threading.Lock()
    deadline = clock.now() + limits.duration_s
    watch = _Watch(limits.precision) if limits.precision else None
    result = LoadResult(model="closed", clients=clients)

    def take_ticket() -> float | None:
        nonlocal issued
        with lock:
            now = clock.now()
            if issued >= limits.max_requests or result.stopped_early:
                return None
            if now >= deadline:
                result.capped = True
                return None
            if watch is not None and (reason := watch.settled()):
                result.stopped_early = reason
                return None
            if limits.stop_when is not None and (reason := limits.stop_when()):
                result.stopped_early = reason
                return None
            issued += 1
            # Due now: a closed client never waits for a schedule, so latency equals service time.
            return now

    return _drive(
        result,
        client_factory,
        take_ticket,
        lambda: issued,
        label=label,
        progress=progress,
        classify=classify,
        clock=clock,
        watch=watch,
    )


def run_open(
    client_factory: ClientFactory,
    rate_per_s: float,
    limits: Limits,
    *,
    workers: int,
    label: str = "open",
    progress: bool = False,
    classify: Classifier = _type_name,
    clock: Clock = SYSTEM_CLOCK,
) -> LoadResult:
    """Requests due every 1/rate seconds, served by up to `workers` concurrent clients.

    A request due while every worker is busy waits for one, and that wait is part of its latency.
    """
    if rate_per_s <= 0:
        raise LoadError(f"rate_per_s must be positive, got {rate_per_s}")
    if workers <= 0:
        raise LoadError(f"workers must be positive, got {workers}")
    total = min(limits.max_requests, max(1, int(limits.duration_s * rate_per_s)))
    next_ticket = 0
    lock = threading.Lock()
    began = clock.now()
    # A stalled server must not stretch the run without bound: nothing is sent after this.
    hard_deadline = began + limits.duration_s * 2 + 5

    def take_ticket() -> float | None:
        nonlocal next_ticket
        with lock:
            if next_ticket >= total:
                return None
            if clock.now() >= hard_deadline:
                result.capped = True
                return None
            intended = began + next_ticket / rate_per_s
            next_ticket += 1
            return intended

    result = LoadResult(model="open", clients=workers, target_rate=rate_per_s)
    return _drive(
        result,
        client_factory,
        take_ticket,
        lambda: next_ticket,
        label=label,
        progress=progress,
        classify=classify,
        clock=clock,
    )


@contextlib.contextmanager
def plain_client(request: Request) -> Iterator[Request]:
    """A client with nothing to open or close."""
    yield request
