"""`harness workload replay`: drive a team's query mix in the open model and judge it statement by statement.

Requests are due at a constant rate (harness.measure.load.run_open: latency from each request's intended
start, so a stall is charged to every request it delayed); each picks a statement by its weight and draws
its parameters from the workload file's generators. Statements run as the application role through the
proxy by default, each in its own transaction (autocommit), as captured. Latencies land in one HDR
histogram per statement; a statement's `threshold` (`p95 < 20ms`) is judged on it, and the report sets
the local figures beside the deployment's means from the capture.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from hdrh.histogram import HdrHistogram
from pgvector.psycopg import register_vector

from harness.endpoints import PostgresEndpoint
from harness.measure.load import Limits, LoadResult, Request, run_open
from harness.thresholds import ExitCode
from harness.workload.file import Statement, Workload, WorkloadError, placeholders

PASS, FAIL, BROKEN, NONE = "PASS", "FAIL", "BROKEN", "-"
EXIT_CODES = {PASS: ExitCode.PASS, NONE: ExitCode.PASS, FAIL: ExitCode.FAIL, BROKEN: ExitCode.BROKEN}
STATEMENT_TIMEOUT_S = 30.0


class _Watchdog:
    """Cancels a statement that runs past its limit. Through PgBouncer no session statement_timeout can be
    given (it ignores the `options` startup parameter, and a SET would stay on a shared server connection),
    so the bound is kept from the client side: a blackholed server fails the request instead of hanging."""

    def __init__(self, conn: psycopg.Connection[Any], limit_s: float) -> None:
        self.conn, self.limit_s = conn, limit_s
        self.started: float | None = None
        self.cancelled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(min(0.25, self.limit_s / 4)):
            started = self.started
            if started is not None and time.monotonic() - started > self.limit_s:
                self.started = None
                self.cancelled += 1
                self.conn.cancel_safe(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _StatementFailed(Exception):
    """A replayed statement raised; carries the statement id so the load core counts it per statement."""

    def __init__(self, label: str, cause: BaseException) -> None:
        super().__init__(f"{label}: {type(cause).__name__}: {cause}")
        self.request_label = label


VectorLookup = dict[str, np.ndarray]


class ParamDrawer:
    """Draws one statement's parameters from its generators."""

    def __init__(self, statement: Statement, vectors: VectorLookup) -> None:
        self.statement = statement
        self.vectors = vectors

    def draw(self, rng: random.Random) -> list[Any]:
        values: list[Any] = []
        for param in self.statement.params:
            kind, spec = next(iter(param.items()))
            if kind == "sample":
                values.append(rng.choice(spec))
            elif kind == "value":
                values.append(spec)
            elif kind == "range":
                values.append(rng.randint(spec[0], spec[1]))
            elif kind == "vector":
                queries = self.vectors[spec]
                values.append(queries[rng.randrange(len(queries))])
            else:
                raise WorkloadError(f"statement {self.statement.id}: {param}")
        return values


def check_replayable(workload: Workload, vectors: VectorLookup) -> list[Statement]:
    """The statements to replay (weight > 0); refuses any without complete generators or vectors."""
    chosen = [s for s in workload.statements if s.replay_weight > 0]
    if not chosen:
        raise WorkloadError("no statement has a weight (calls or weight > 0): nothing to replay")
    missing = [s.id for s in chosen if s.id in workload.missing_params()]
    if missing:
        raise WorkloadError(
            f"statements {', '.join(missing)} lack parameter generators: run `harness workload params FILE` "
            "against the seeded stack, then fill any `todo:` left in the file"
        )
    for s in chosen:
        for param in s.params:
            if "vector" in param and param["vector"] not in vectors:
                raise WorkloadError(f"statement {s.id}: no held-out query vectors for {param['vector']}")
    return chosen


def vector_columns(workload: Workload) -> set[str]:
    return {str(p["vector"]) for s in workload.statements for p in s.params if "vector" in p}


@dataclass
class StatementResult:
    statement: Statement
    histogram: HdrHistogram | None
    errors: int
    verdict: str
    measured: str = ""

    @property
    def ok(self) -> int:
        return int(self.histogram.get_total_count()) if self.histogram is not None else 0

    def percentile_ms(self, p: float) -> float | None:
        if self.histogram is None or self.histogram.get_total_count() == 0:
            return None
        return float(self.histogram.get_value_at_percentile(p)) / 1000


@dataclass
class ReplayReport:
    load: LoadResult
    statements: list[StatementResult] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.statements}
        for v in (BROKEN, FAIL, PASS):
            if v in verdicts:
                return v
        return NONE

    def lines(self) -> list[str]:
        out = [
            f"{'statement':<16} {'ok':>7} {'err':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'captured mean':>13} {'threshold':<14} verdict"
        ]
        for r in self.statements:
            p50, p95, p99 = (r.percentile_ms(p) for p in (50, 95, 99))
            captured = f"{r.statement.mean_ms:.2f}" if r.statement.mean_ms is not None else "-"
            measured = f"  {r.measured}" if r.measured else ""
            out.append(
                f"{r.statement.id:<16} {r.ok:>7} {r.errors:>5} {_fmt(p50):>8} {_fmt(p95):>8} {_fmt(p99):>8} "
                f"{captured:>13} {r.statement.threshold or '-':<14} {r.verdict}{measured}"
            )
        out.append(self.load.summary())
        if self.load.error_samples:
            out.append("first errors: " + " | ".join(self.load.error_samples[:3]))
        return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def judge(statement: Statement, histogram: HdrHistogram | None) -> tuple[str, str]:
    """(verdict, what was measured) for a statement's own threshold; a threshold never measured is BROKEN."""
    condition = statement.condition()
    if condition is None:
        return NONE, ""
    if histogram is None or histogram.get_total_count() == 0:
        return BROKEN, "no successful request was measured"
    stat = condition.statistic
    if stat.percentile is not None:
        measured = histogram.get_value_at_percentile(stat.percentile) / 1000
    elif stat.name == "mean":
        measured = histogram.get_mean_value() / 1000
    elif stat.name == "max":
        measured = histogram.get_max_value() / 1000
    elif stat.name == "min":
        measured = histogram.get_min_value() / 1000
    elif stat.name == "count":
        measured = float(histogram.get_total_count())
    else:
        return BROKEN, f"{stat} does not apply to a latency"
    level = condition.level
    if condition.unit == "s" and not stat.dimensionless:
        level *= 1000
    elif condition.unit not in (None, "ms") and not stat.dimensionless:
        return BROKEN, f"unit {condition.unit} is not a time"
    return (PASS if condition.holds(measured, level) else FAIL), f"{stat} = {measured:.2f}"


def replay(
    workload: Workload,
    endpoint: PostgresEndpoint,
    vectors: VectorLookup,
    *,
    rate_per_s: float,
    duration_s: float,
    workers: int = 8,
    seed: int = 1,
    progress: bool = False,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> ReplayReport:
    chosen = check_replayable(workload, vectors)
    drawers = [ParamDrawer(s, vectors) for s in chosen]
    weights = [s.replay_weight for s in chosen]

    @contextlib.contextmanager
    def client(index: int) -> Iterator[Request]:
        rng = random.Random(seed * 1000 + index)
        with endpoint.connect(autocommit=True, prepare_threshold=None) as conn:
            if vectors:
                register_vector(conn)
            cursor = psycopg.RawCursor(conn)
            watchdog = _Watchdog(conn, statement_timeout_s)

            def request() -> str:
                drawer = rng.choices(drawers, weights)[0]
                statement = drawer.statement
                params = drawer.draw(rng) if placeholders(statement.query) else None
                watchdog.started = time.monotonic()
                try:
                    cursor.execute(statement.query, params)
                    if cursor.description is not None:
                        cursor.fetchall()
                except psycopg.Error as exc:
                    raise _StatementFailed(statement.id, exc) from exc
                finally:
                    watchdog.started = None
                return statement.id

            try:
                yield request
            finally:
                watchdog.stop()

    limits = Limits(duration_s, max(1, int(rate_per_s * duration_s)))
    load = run_open(client, rate_per_s, limits, workers=workers, label="workload replay", progress=progress)
    report = ReplayReport(load)
    for s in chosen:
        histogram = load.by_label.get(s.id)
        verdict, measured = judge(s, histogram)
        report.statements.append(StatementResult(s, histogram, load.errors_by_label.get(s.id, 0), verdict, measured))
    return report
