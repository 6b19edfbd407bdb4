"""`harness thresholds ...` and `harness report ...` subcommands; harness/cli/main.py registers them with
`add_threshold_commands(sub)` and `add_report_commands(sub)`, then calls `args.func(args)`.

Every func returns an exit code from harness.thresholds (ExitCode.PASS, ExitCode.WARN, ExitCode.FAIL, ExitCode.BROKEN);
problems go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.measure.results import ResultsError
from harness.report import compare_judged, compare_paths, format_verdict_table, load_judged, render_report
from harness.report.text import conditions
from harness.thresholds import ExitCode, ThresholdConfigError, ThresholdSet, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--override",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="override file (`overrides:` keyed by threshold id) layered over the defaults; repeatable",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="ID[:LEVEL]=EXPR",
        help="override one level, e.g. 'vector_search.latency_ms:warning=p95 < 80ms' (none removes it); "
        "applied last; repeatable",
    )


def _load(args: argparse.Namespace, path: Path) -> ThresholdSet | None:
    try:
        return load_thresholds(path, args.override, args.sets)
    except ThresholdConfigError as exc:
        print(f"thresholds are invalid; nothing was evaluated:\n{exc}", file=sys.stderr)
        return None


def cmd_thresholds_check(args: argparse.Namespace) -> int:
    thresholds = _load(args, args.file)
    if thresholds is None:
        return ExitCode.BROKEN
    width = max(len(t.id) for t in thresholds.thresholds) if thresholds.thresholds else 0
    for t in thresholds.thresholds:
        print(f"{t.id.ljust(width)}  {conditions(t)}{'  (ours)' if t.ours else ''}")
    print(f"{len(thresholds.thresholds)} thresholds valid ({', '.join(thresholds.sources)})")
    return ExitCode.PASS


def add_threshold_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("thresholds", help="threshold files: validate without running anything")
    sub = parser.add_subparsers(dest="thresholds_command", required=True)
    check = sub.add_parser(
        "check",
        help="validate a thresholds file and its overrides",
        description=f"Exit {ExitCode.PASS} when valid, {ExitCode.BROKEN} with every problem listed on stderr.",
    )
    check.add_argument("file", type=Path, help="thresholds YAML, e.g. fixtures/thresholds.yaml")
    add_override_arguments(check)
    check.set_defaults(func=cmd_thresholds_check)


def cmd_report_render(args: argparse.Namespace) -> int:
    if not args.thresholds.is_file():
        print(f"thresholds file {args.thresholds} does not exist; pass --thresholds FILE", file=sys.stderr)
        return ExitCode.BROKEN
    thresholds = _load(args, args.thresholds)
    if thresholds is None:
        return ExitCode.BROKEN
    try:
        outcome = render_report(args.results, args.out, thresholds)
    except ResultsError as exc:
        print(f"cannot render the report: {exc}", file=sys.stderr)
        return ExitCode.BROKEN
    print(format_verdict_table(outcome.evaluation))
    print(f"\nreport: {outcome.files['report.html']} (also report.md, report.json, junit.xml)")
    return outcome.exit_code


def cmd_report_compare(args: argparse.Namespace) -> int:
    try:
        if args.judged:
            print(compare_judged(load_judged(args.a), load_judged(args.b), markdown=args.markdown))
        else:
            print(compare_paths(args.a, args.b))
    except ResultsError as exc:
        print(f"cannot compare: {exc}", file=sys.stderr)
        return ExitCode.BROKEN
    return ExitCode.PASS


def add_report_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("report", help="render a run's report, or compare two runs")
    sub = parser.add_subparsers(dest="report_command", required=True)
    render = sub.add_parser(
        "render",
        help="evaluate thresholds and write report.json, report.md, report.html, junit.xml",
        description="Exits with the verdict's code (see harness/thresholds/evaluate.py).",
    )
    render.add_argument("results", type=Path, help="the run's results JSON")
    render.add_argument("--out", type=Path, required=True, help="directory to write the report into")
    render.add_argument(
        "--thresholds",
        type=Path,
        default=DEFAULT_THRESHOLDS_FILE,
        help=f"thresholds YAML (default: {DEFAULT_THRESHOLDS_FILE})",
    )
    add_override_arguments(render)
    render.set_defaults(func=cmd_report_render)
    compare = sub.add_parser(
        "compare",
        help="two runs' figures side by side with the change in each",
        description="A and B are results files or report directories (which hold results.json). With --judged,\n"
        "report directories (or report.json files): each threshold's figure, N and status in both runs.",
    )
    compare.add_argument("a", type=Path, help="baseline run")
    compare.add_argument("b", type=Path, help="run to compare with the baseline")
    compare.add_argument(
        "--judged", action="store_true", help="compare what the two reports judged, threshold by threshold"
    )
    compare.add_argument("--markdown", action="store_true", help="with --judged: a Markdown table")
    compare.set_defaults(func=cmd_report_compare)
