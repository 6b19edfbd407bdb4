"""Ships REPORT lines and function logs to CloudWatch Logs and metrics to CloudWatch, off the invoke path.

Invocations only enqueue; one thread batches and sends, so a slow emulator never lengthens a measured
duration. Publishing failures are written to the runtime's own log once per kind and never fail an invoke.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import defaultdict
from typing import Any

FLUSH_INTERVAL_S = 0.5
# PutMetricData takes up to 1,000 data points per call; PutLogEvents up to 10,000 events.
MAX_METRICS_PER_CALL = 1000
MAX_EVENTS_PER_CALL = 10_000
NAMESPACE = "AWS/Lambda"


class CloudWatchPublisher:
    def __init__(self, logs_client: Any, metrics_client: Any) -> None:
        self.logs = logs_client
        self.metrics = metrics_client
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._groups: set[str] = set()
        self._streams: set[tuple[str, str]] = set()
        self._reported: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cloudwatch-publisher")

    def start(self) -> None:
        self._thread.start()

    def log(self, group: str, stream: str, lines: list[str]) -> None:
        now = int(time.time() * 1000)
        self._queue.put(("log", (group, stream, [(now, line) for line in lines])))

    def metric(self, function_name: str, name: str, value: float, unit: str) -> None:
        self._queue.put(
            (
                "metric",
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                    "Timestamp": time.time(),
                    "Value": value,
                    "Unit": unit,
                },
            )
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(FLUSH_INTERVAL_S)
            self._flush()
            if stopping:
                return

    def _drain(self) -> tuple[dict[tuple[str, str], list[tuple[int, str]]], list[dict[str, Any]]]:
        events: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        metrics: list[dict[str, Any]] = []
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return events, metrics
            if kind == "log":
                group, stream, lines = item
                events[(group, stream)].extend(lines)
            else:
                metrics.append(item)

    def _flush(self) -> None:
        events, metrics = self._drain()
        for (group, stream), lines in events.items():
            self._attempt("logs", lambda g=group, s=stream, e=lines: self._put_logs(g, s, e))
        for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
            batch = metrics[start : start + MAX_METRICS_PER_CALL]
            self._attempt("metrics", lambda b=batch: self.metrics.put_metric_data(Namespace=NAMESPACE, MetricData=b))

    def _put_logs(self, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
        if group not in self._groups:
            with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                self.logs.create_log_group(logGroupName=group)
            self._groups.add(group)
        if (group, stream) not in self._streams:
            with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams.add((group, stream))
        for start in range(0, len(lines), MAX_EVENTS_PER_CALL):
            chunk = lines[start : start + MAX_EVENTS_PER_CALL]
            # CloudWatch rejects empty messages; a blank line the function printed stays visible as one space.
            batch = [{"timestamp": ts, "message": message or " "} for ts, message in chunk]
            self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)

    def _attempt(self, what: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            if what not in self._reported:
                self._reported.add(what)
                print(
                    f"lambda runtime: could not publish {what} to CloudWatch ({exc}); invocations go on, "
                    "but the CloudWatch view is incomplete until the AWS emulator answers again",
                    file=sys.stderr,
                    flush=True,
                )
