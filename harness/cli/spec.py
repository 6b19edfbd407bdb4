"""`harness spec lint` and `harness spec show`: the unit's spec (fixtures/unit.yaml) against its design
document. Exit 0 when every contradiction is resolved, 1 when one is not (or a claim's quote left the
document), 2 when the spec or the document cannot be read."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.cli.common import settings_from
from harness.measure.results import ResultsWriter
from harness.spec import DEFAULT_SPEC_FILE, DocumentError, SpecError, UnitSpec, lint, load_unit_spec, read_document
from harness.spec.drift import ALARM_METRICS, DeploymentIds, DriftStatus, check_drift, drift_record
from harness.spec.lint import FindingKind
from harness.spec.model import parse_uses
from harness.thresholds import ExitCode


def _spec(args: argparse.Namespace) -> UnitSpec:
    return load_unit_spec(args.spec).with_uses(parse_uses(args.use))


def cmd_spec_lint(args: argparse.Namespace) -> int:
    try:
        spec = _spec(args)
        document = read_document(args.document or spec.document)
    except (SpecError, DocumentError) as exc:
        print(f"spec lint: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    findings = lint(spec, document)
    for finding in findings:
        print(finding.line())
    counts = {kind: sum(f.kind is kind for f in findings) for kind in FindingKind}
    errors = counts[FindingKind.CONTRADICTION] + counts[FindingKind.NOT_IN_DOCUMENT]
    print(
        f"\n{len(spec.facts)} facts from {document.path.name}: "
        f"{counts[FindingKind.CONTRADICTION] + counts[FindingKind.RESOLVED]} contradictions in the document "
        f"({counts[FindingKind.RESOLVED]} resolved by the spec, {counts[FindingKind.CONTRADICTION]} open), "
        f"{counts[FindingKind.NOT_IN_DOCUMENT]} claims not found in it, "
        f"{counts[FindingKind.CHOSEN]} values the document does not state"
    )
    if errors:
        print("spec lint: FAILED (open contradictions or stale claims above)", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_spec_show(args: argparse.Namespace) -> int:
    try:
        spec = _spec(args)
    except SpecError as exc:
        print(f"spec show: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    width = max(len(name) for name in spec.facts)
    for fact in spec.facts.values():
        value = fact.value
        shown = "UNRESOLVED" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        unit = f" {fact.unit}" if fact.unit else ""
        source = fact.claims[0].section if fact.claims and fact.use is None else (fact.why or "").split(";")[0]
        print(f"{fact.name.ljust(width)}  {shown}{unit}  ({source})")
    return ExitCode.OK


def cmd_spec_drift(args: argparse.Namespace) -> int:
    from harness.backends import get_backend
    from harness.thresholds import ThresholdConfigError, load_thresholds
    from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

    try:
        spec = _spec(args)
        thresholds = load_thresholds(DEFAULT_THRESHOLDS_FILE)
        functions = dict(DeploymentIds().functions) | parse_uses(args.function)
    except (SpecError, ThresholdConfigError) as exc:
        print(f"spec drift: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.results is not None and not args.results.is_file():
        print(f"spec drift: --results {args.results}: no such results file (a run's results.json)", file=sys.stderr)
        return ExitCode.BAD_INPUT
    settings = settings_from(args)
    endpoints = get_backend(settings).endpoints()
    if endpoints is None:
        print("spec drift: the stack is not up (for a deployment: --backend external)", file=sys.stderr)
        return ExitCode.FAILED
    ids = DeploymentIds(args.db_instance, args.db_proxy, args.cache_cluster, functions)
    rows = check_drift(spec, endpoints.aws.client, thresholds.alarm_levels(ALARM_METRICS), ids)
    if args.results is not None:
        ResultsWriter.open(args.results, run=drift_record(rows))
        print(f"recorded in {args.results} (run.spec_drift); `harness report render` re-renders its checklist")
    for row in rows:
        print(row.line())
    counts = {s: sum(r.status is s for r in rows) for s in DriftStatus}
    print(f"\n{len(rows)} settings: " + ", ".join(f"{n} {s.value}" for s, n in counts.items()))
    return ExitCode.OK if counts[DriftStatus.MATCH] == len(rows) else ExitCode.FAILED


def add_spec_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    spec = subparsers.add_parser("spec", help="the unit's spec (fixtures/unit.yaml) against its design document")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC_FILE, help="the unit spec (default fixtures/unit.yaml)"
    )
    common.add_argument(
        "--use",
        action="append",
        default=[],
        metavar="FACT=VALUE",
        help="choose a fact's value for this run; repeatable",
    )
    lint_parser = spec_sub.add_parser(
        "lint",
        parents=[common],
        help="list where the design document contradicts itself and how the spec resolves it",
        description="Exit 0: every contradiction resolved; 1: one is open or a claim left the document; "
        "2: the spec or the document cannot be read.",
    )
    lint_parser.add_argument("--document", type=Path, help="the design document (default: the spec's `document`)")
    lint_parser.set_defaults(func=cmd_spec_lint)
    show = spec_sub.add_parser("show", parents=[common], help="every fact and the value the harness uses")
    show.set_defaults(func=cmd_spec_show)
    drift = spec_sub.add_parser(
        "drift",
        parents=[common, *parents],
        help="read the deployment (read-only describe calls) and compare it with the spec and alarm levels",
        description="Exit 0: every setting matches; 1: a setting drifted or could not be read; 2: bad input.",
    )
    drift.add_argument("--db-instance", default="dbunit", help="DBInstanceIdentifier")
    drift.add_argument("--db-proxy", default="dbunit-proxy", help="DBProxyName")
    drift.add_argument("--cache-cluster", default="dbunit-cache", help="CacheClusterId")
    drift.add_argument(
        "--function", action="append", default=[], metavar="SPEC_NAME=DEPLOYED", help="e.g. data_export=dbunit-export"
    )
    drift.add_argument(
        "--results",
        type=Path,
        metavar="RESULTS_JSON",
        help="also record the rows in this run's results.json: the checklist items they decide read them",
    )
    drift.set_defaults(func=cmd_spec_drift)
