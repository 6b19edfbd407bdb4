"""`harness workload capture|params|pins|replay`: a team's own query mix against the unit.

capture  reads pg_stat_statements of the stack's database (the external backend: a staging deployment), read-only
params   writes a parameter generator for each $n, sampled from the locally seeded data
pins     reports which statements would pin in RDS Proxy and what PgBouncer does with them; judged
replay   drives the mix in the open model through the proxy, judges each statement and the pinned share

Exit codes: 0 done / PASS, 1 could not run (message on stderr), 3 WARN, 4 FAIL, 5 BROKEN (as the sign-off).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Settings, resolve_settings
from harness.data.app_role import AppRoleError, app_endpoint, data_root
from harness.data.datasets import load_current_ground_truth
from harness.data.loading import SeedError
from harness.endpoints import EndpointFileError, StackEndpoints, load_endpoints
from harness.measure.results import ResultsWriter, load_results
from harness.report import format_verdict_table
from harness.thresholds import ThresholdConfigError, evaluate, exit_code, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE
from harness.workload.capture import CaptureError, capture
from harness.workload.file import Workload, WorkloadError, leading_comments, load_workload, save_workload
from harness.workload.params import fill_params
from harness.workload.pinning import PinningSummary, summarise
from harness.workload.replay import EXIT_CODES, replay, vector_columns

WORKLOAD_THRESHOLDS_FILE = DEFAULT_THRESHOLDS_FILE.with_name("thresholds-workload.yaml")
EXIT_CANNOT_RUN = 1


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    # float() takes "nan" and "inf", which no rate or duration can be (found by the hostile-input sweep).
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def add_workload_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "workload", help="capture, parameterise, analyse and replay your own query mix", description=__doc__
    )
    sub = parser.add_subparsers(dest="workload_command", required=True)

    cap = sub.add_parser("capture", parents=list(parents), help="top statements from pg_stat_statements (read-only)")
    cap.add_argument("--out", type=Path, required=True, help="workload file to write")
    cap.add_argument("--top", type=int, default=20, help="top N by total time and top N by calls (default 20)")
    cap.add_argument("--min-calls", type=int, default=1, help="leave out statements called fewer times")
    cap.add_argument("--user", help="only statements run by this role (default: every role)")
    cap.add_argument("--via", choices=("direct", "proxy"), default="direct", help="endpoint to read from")
    cap.set_defaults(func=run_capture)

    par = sub.add_parser("params", parents=list(parents), help="parameter generators from the seeded data")
    par.add_argument("workload", type=Path)
    par.add_argument("--overwrite", action="store_true", help="replace generators already in the file")
    par.set_defaults(func=run_params)

    pins = sub.add_parser("pins", parents=list(parents), help="which statements would pin in RDS Proxy")
    pins.add_argument("workload", type=Path)
    pins.add_argument("--results", type=Path, help="results file to record the pinned share in")
    pins.set_defaults(func=run_pins)

    rep = sub.add_parser("replay", parents=list(parents), help="drive the mix in the open model and judge it")
    rep.add_argument("workload", type=Path)
    rep.add_argument("--rate", type=_positive_float, required=True, help="requests per second")
    rep.add_argument("--duration", type=_positive_float, required=True, help="seconds")
    rep.add_argument("--workers", type=int, default=8, help="concurrent connections (default 8)")
    rep.add_argument("--via", choices=("proxy", "direct"), default="proxy")
    rep.add_argument("--results", type=Path, help="results file (default reports/workload-<time>/results.json)")
    rep.add_argument("--seed", type=int, default=1, help="random seed of statement choice and parameters")
    rep.set_defaults(func=run_replay)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return getattr(args, "settings", None) or resolve_settings(
        {"backend": getattr(args, "backend", None), "state_dir": getattr(args, "state_dir", None)}
    )


def _stack(settings: Settings) -> StackEndpoints:
    stack = load_endpoints(settings.state_dir)
    if stack is None:
        raise WorkloadError(f"no running stack found in {settings.state_dir}: start it with `harness up`")
    return stack


def _fail(command: str, exc: BaseException) -> int:
    print(f"harness workload {command}: {exc}", file=sys.stderr)
    return EXIT_CANNOT_RUN


_ERRORS = (WorkloadError, CaptureError, SeedError, AppRoleError, EndpointFileError, ThresholdConfigError)


def run_capture(args: argparse.Namespace) -> int:
    try:
        stack = _stack(_settings(args))
        endpoint = stack.direct if args.via == "direct" else stack.proxy
        workload = capture(endpoint, top=args.top, min_calls=args.min_calls, user=args.user)
        if not workload.statements:
            raise WorkloadError("pg_stat_statements holds no statement matching the filters: nothing to capture")
        save_workload(
            workload,
            args.out,
            "# Captured by `harness workload capture`. Next: `harness workload params` writes parameter\n"
            "# generators from your seeded data; edit weights and add `threshold: p95 < 20ms` per statement.",
        )
    except _ERRORS as exc:
        return _fail("capture", exc)
    print(f"captured {len(workload.statements)} statements into {args.out}")
    return 0


def run_params(args: argparse.Namespace) -> int:
    try:
        stack = _stack(_settings(args))
        workload = load_workload(args.workload)
        notes = fill_params(workload, stack.direct, overwrite=args.overwrite)
        save_workload(workload, args.workload, leading_comments(args.workload))
    except _ERRORS as exc:
        return _fail("params", exc)
    for note in notes:
        print(f"  todo: {note}", file=sys.stderr)
    print(f"parameter generators written into {args.workload}" + (f"; {len(notes)} left to you" if notes else ""))
    return 0


def _pinning(workload: Workload) -> PinningSummary:
    return summarise((s.id, s.query, s.calls) for s in workload.statements)


def _judge_workload_thresholds(results_path: Path, metrics: set[str]) -> int:
    thresholds = load_thresholds(WORKLOAD_THRESHOLDS_FILE)
    thresholds = type(thresholds)(tuple(t for t in thresholds.thresholds if t.metric in metrics), thresholds.sources)
    outcome = evaluate(thresholds, load_results(results_path))
    print(format_verdict_table(outcome))
    return exit_code(outcome)


def run_pins(args: argparse.Namespace) -> int:
    try:
        workload = load_workload(args.workload)
        summary = _pinning(workload)
        for line in summary.lines():
            print(line)
        if summary.unparsed:
            print(f"could not parse {', '.join(summary.unparsed)}: the pinned share is not judged", file=sys.stderr)
            return 5
        if args.results is None:
            return 0
        ResultsWriter.open(args.results).record_value("workload.pinned_calls_pct", summary.pinned_share_pct)
        return _judge_workload_thresholds(args.results, {"workload.pinned_calls_pct"})
    except (*_ERRORS, ValueError) as exc:
        return _fail("pins", exc)


def run_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        stack = _stack(settings)
        workload = load_workload(args.workload)
        vectors: dict[str, np.ndarray] = {}
        for name in sorted(vector_columns(workload)):
            table, column = name.split(".")
            truth = load_current_ground_truth(stack.direct, data_root(settings.state_dir), table, column)
            vectors[name] = np.asarray(truth.queries)
        endpoint = app_endpoint(stack, settings.state_dir, via_proxy=args.via == "proxy")
        report = replay(
            workload,
            endpoint,
            vectors,
            rate_per_s=args.rate,
            duration_s=args.duration,
            workers=args.workers,
            seed=args.seed,
            progress=True,
        )
        results_path = args.results or Path("reports") / f"workload-{datetime.now(UTC):%Y%m%dT%H%M%SZ}" / "results.json"
        # The deployment's figures beside the local histograms, so a report can compare them statement by statement.
        captured = {r.statement.id: r.statement.mean_ms for r in report.statements if r.statement.mean_ms is not None}
        writer = ResultsWriter.open(
            results_path,
            {"workload": {"file": str(args.workload), "via": args.via, "captured_mean_ms": captured}},
        )
        for r in report.statements:
            if r.histogram is not None and r.histogram.get_total_count():
                writer.record_latency("workload.statement_ms", r.histogram, {"statement": r.statement.id})
        writer.record_rate("workload.error_rate_pct", report.load.errors, report.load.ok + report.load.errors)
        pinning = _pinning(workload)
        if pinning.unparsed:
            # Left unrecorded, the pinned-share threshold is judged as never measured (BROKEN), not passed.
            print(f"could not parse {', '.join(pinning.unparsed)}: the pinned share is not judged", file=sys.stderr)
        elif pinning.total_calls:
            writer.record_value("workload.pinned_calls_pct", pinning.pinned_share_pct)
    except _ERRORS as exc:
        return _fail("replay", exc)
    for line in report.lines():
        print(line)
    print(f"results in {results_path}")
    code = _judge_workload_thresholds(results_path, {"workload.pinned_calls_pct", "workload.error_rate_pct"})
    statement_code = EXIT_CODES[report.verdict]
    return max(code, statement_code)
