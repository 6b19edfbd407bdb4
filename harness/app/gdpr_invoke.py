"""Invoking the GDPR functions as a scenario, a benchmark or a Locust user does, and reading what Lambda
reports about each invocation.

`invoke_series` runs N invocations (optionally concurrent) and returns each one's REPORT line parsed,
so a caller gets durations, billed durations, Max Memory Used, cold starts, errors, throttles and
GB-seconds exactly as CloudWatch would show them. Apart from packaging and deploying (gdpr_deploy.py):
invoking needs only a Lambda client, not the functions' source.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from harness.endpoints import AwsEndpoint
from harness.lambda_runtime.report_line import ReportLine, find_report_line

_UNCAPPED_CPU = re.compile(r"^HARNESS RequestId: \S+\tCPU Time: (?P<ms>[0-9.]+) ms", re.MULTILINE)
# Lambda's synchronous invoke may run 900 s; botocore's default 60 s read timeout would cut it short.
INVOKE_READ_TIMEOUT_S = 910


def lambda_client(aws: AwsEndpoint) -> Any:
    """A Lambda client for measurements: no automatic retries (a throttle must count as a throttle, not
    turn into a slower success) and a read timeout above Lambda's 900 s maximum."""
    from botocore.config import Config

    return aws.client(
        "lambda",
        config=Config(
            retries={"total_max_attempts": 1},
            read_timeout=INVOKE_READ_TIMEOUT_S,
            connect_timeout=10,
            # A burst scenario invokes many at once; botocore's default pool of 10 would queue them.
            max_pool_connections=64,
        ),
    )


@dataclass(frozen=True)
class Invocation:
    function: str
    throttled: bool
    function_error: str | None
    payload: Any
    report: ReportLine | None  # None when throttled (no environment ran)
    wall_ms: float
    log_tail: str = ""
    # CPU time the invocation used, reported by the local runtime only where it cannot cap CPU.
    cpu_ms: float | None = None


def invoke(client: Any, function: str, payload: Any) -> Invocation:
    """One synchronous invocation with the log tail, its REPORT line parsed."""
    began = time.perf_counter()
    try:
        response = client.invoke(FunctionName=function, Payload=json.dumps(payload).encode(), LogType="Tail")
    except client.exceptions.TooManyRequestsException:
        return Invocation(function, True, None, None, None, (time.perf_counter() - began) * 1000)
    wall_ms = (time.perf_counter() - began) * 1000
    body = response["Payload"].read()
    tail = base64.b64decode(response.get("LogResult", "")).decode("utf-8", "replace")
    parsed = json.loads(body) if body else None
    cpu = _UNCAPPED_CPU.search(tail)
    return Invocation(
        function,
        False,
        response.get("FunctionError"),
        parsed,
        find_report_line(tail),
        wall_ms,
        tail,
        float(cpu["ms"]) if cpu else None,
    )


@dataclass
class InvocationSeries:
    function: str
    invocations: list[Invocation] = field(default_factory=list)

    @property
    def reports(self) -> list[ReportLine]:
        return [i.report for i in self.invocations if i.report is not None]

    @property
    def durations_ms(self) -> list[float]:
        return [r.duration_ms for r in self.reports]

    @property
    def billed_durations_ms(self) -> list[int]:
        return [r.billed_duration_ms for r in self.reports]

    @property
    def max_memory_used_mb(self) -> list[int]:
        return [r.max_memory_used_mb for r in self.reports]

    @property
    def init_durations_ms(self) -> list[float]:
        return [r.init_duration_ms for r in self.reports if r.init_duration_ms is not None]

    @property
    def errors(self) -> int:
        return sum(1 for i in self.invocations if i.function_error)

    @property
    def throttles(self) -> int:
        return sum(1 for i in self.invocations if i.throttled)

    @property
    def gb_seconds(self) -> float:
        return sum(r.gb_seconds for r in self.reports)

    def summary(self) -> dict[str, Any]:
        durations = sorted(self.durations_ms)

        def pct(p: float) -> float | None:
            return durations[min(len(durations) - 1, int(p / 100 * len(durations)))] if durations else None

        return {
            "function": self.function,
            "invocations": len(self.invocations),
            "errors": self.errors,
            "throttles": self.throttles,
            "cold_starts": len(self.init_durations_ms),
            "duration_ms": {
                "mean": statistics.fmean(durations) if durations else None,
                "p50": pct(50),
                "p95": pct(95),
                "max": durations[-1] if durations else None,
            },
            "init_duration_ms_mean": statistics.fmean(self.init_durations_ms) if self.init_durations_ms else None,
            "billed_ms_total": sum(self.billed_durations_ms),
            "max_memory_used_mb": max(self.max_memory_used_mb, default=None),
            "gb_seconds": self.gb_seconds,
        }


def invoke_series(
    client: Any,
    function: str,
    payloads: Sequence[Any] | Callable[[int], Any],
    count: int,
    *,
    concurrency: int = 1,
) -> InvocationSeries:
    """Invoke `function` `count` times, `concurrency` at a time; payloads are cycled (or payloads(i))."""
    if count < 1 or concurrency < 1:
        raise ValueError(f"count and concurrency must be at least 1, got {count} and {concurrency}")
    if not callable(payloads) and not payloads:
        raise ValueError("payloads is empty: give at least one event")

    def payload(i: int) -> Any:
        return payloads(i) if callable(payloads) else payloads[i % len(payloads)]

    series = InvocationSeries(function)
    if concurrency == 1:
        series.invocations = [invoke(client, function, payload(i)) for i in range(count)]
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            series.invocations = list(pool.map(lambda i: invoke(client, function, payload(i)), range(count)))
    return series


def monthly_gb_seconds(series: InvocationSeries, invocations_per_month: int) -> float:
    """GB-seconds a month of this traffic would bill, from the series' mean per invocation."""
    if not series.reports:
        return 0.0
    return series.gb_seconds / len(series.reports) * invocations_per_month
