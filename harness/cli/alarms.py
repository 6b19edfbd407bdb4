"""`harness alarms deploy | list | export`: the thresholds file as CloudWatch alarms, SNS topics and dashboards.

Contract with harness.cli: `add_alarms_command(subparsers, parents=[common])` registers the sub-command.
Exit codes: 0 done, 1 the stack or its AWS endpoint failed, 2 bad thresholds or a refused target.
`deploy` and `list` act on the running stack's AWS endpoint (the emulator); on an external deployment
(real AWS) `deploy` refuses unless `--external` says so explicitly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.cli.common import NoRunningStackError, running_stack, settings_from
from harness.cli.reports import add_override_arguments
from harness.config import Settings
from harness.endpoints import StackEndpoints
from harness.monitoring.alarms import AlarmDefinition, alarm_definitions
from harness.monitoring.catalog import cloudwatch_metric, why_not_cloudwatch
from harness.monitoring.dashboards import dashboard_bodies
from harness.monitoring.deploy import clients, deploy, describe
from harness.monitoring.export import FORMATS, write_export
from harness.thresholds import ExitCode, ThresholdConfigError, ThresholdSet, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE


def add_alarms_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    alarms = subparsers.add_parser("alarms", help="CloudWatch alarms and dashboards from the thresholds file")
    sub = alarms.add_subparsers(dest="alarms_command", required=True)
    for name, helptext in (
        ("deploy", "put the alarms, one SNS topic per severity and the four dashboards on the stack"),
        ("list", "the stack's alarms with their state and actions, and thresholds no alarm watches"),
        ("export", "write the Terraform or CloudFormation module for production"),
    ):
        parser = sub.add_parser(name, parents=list(parents), help=helptext)
        parser.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS_FILE)
        add_override_arguments(parser)
        parser.set_defaults(func={"deploy": cmd_deploy, "list": cmd_list, "export": cmd_export}[name])
        if name == "deploy":
            parser.add_argument(
                "--external", action="store_true", help="allow deploying to an external deployment (real CloudWatch)"
            )
        if name == "list":
            parser.add_argument("--json", action="store_true")
        if name == "export":
            parser.add_argument("--format", choices=FORMATS, required=True)
            parser.add_argument("--out", type=Path, required=True, help="directory (e.g. modules/monitoring)")


def _definitions(args: argparse.Namespace, settings: Settings) -> tuple[ThresholdSet, list[AlarmDefinition]] | None:
    try:
        thresholds = load_thresholds(args.thresholds, args.override, args.sets)
    except ThresholdConfigError as exc:
        print(f"thresholds are invalid; no alarm was written:\n{exc}", file=sys.stderr)
        return None
    return thresholds, alarm_definitions(thresholds, db_instance_class=settings.db_instance_class)


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    loaded = _definitions(args, settings)
    if loaded is None:
        return ExitCode.BAD_INPUT
    _, alarms = loaded
    for path in write_export(args.format, args.out, alarms, dashboard_bodies(alarms, settings.region)):
        print(path)
    return ExitCode.OK


def _running_stack(settings: Settings) -> StackEndpoints | None:
    try:
        return running_stack(settings)
    except NoRunningStackError as exc:
        print(f"harness alarms: {exc}", file=sys.stderr)
        return None


def cmd_deploy(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    loaded = _definitions(args, settings)
    if loaded is None:
        return ExitCode.BAD_INPUT
    _, alarms = loaded
    stack = _running_stack(settings)
    if stack is None:
        return ExitCode.FAILED
    if stack.backend == "external" and not args.external:
        print(
            "harness alarms deploy: this is an external deployment (real CloudWatch, real pages); "
            "pass --external to deploy the alarms there",
            file=sys.stderr,
        )
        return ExitCode.BAD_INPUT
    try:
        done = deploy(stack.aws, alarms, dashboard_bodies(alarms, stack.aws.region))
    except (BotoCoreError, ClientError) as exc:
        print(
            f"harness alarms deploy: the AWS endpoint failed ({exc}); check it with `harness status`", file=sys.stderr
        )
        return ExitCode.FAILED
    print(
        f"{len(done.alarms)} alarms, topics {', '.join(done.topics.values())}, dashboards {', '.join(done.dashboards)}"
    )
    if done.deleted:
        print(f"deleted alarms the thresholds no longer call for: {', '.join(done.deleted)}")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    loaded = _definitions(args, settings)
    if loaded is None:
        return ExitCode.BAD_INPUT
    thresholds, _ = loaded
    stack = _running_stack(settings)
    if stack is None:
        return ExitCode.FAILED
    try:
        cloudwatch, _sns = clients(stack.aws)
        found = describe(cloudwatch)
    except (BotoCoreError, ClientError) as exc:
        print(f"harness alarms list: the AWS endpoint failed ({exc})", file=sys.stderr)
        return ExitCode.FAILED
    unwatched = {
        t.id: why_not_cloudwatch(t.metric) for t in thresholds.thresholds if cloudwatch_metric(t.metric) is None
    }
    if args.json:
        print(json.dumps({"alarms": found, "not_alarmed": unwatched}, indent=2, default=str))
        return ExitCode.OK
    for alarm in found:
        what = alarm.get("MetricName") or "metric math"
        actions = ", ".join(a.rsplit(":", 1)[-1] for a in alarm.get("AlarmActions", []))
        print(
            f"{alarm['StateValue']:<17} {alarm['AlarmName']:<52} {what} {alarm.get('ComparisonOperator')} "
            f"{alarm.get('Threshold'):g} ({alarm.get('DatapointsToAlarm', alarm.get('EvaluationPeriods'))} of "
            f"{alarm.get('EvaluationPeriods')} x {alarm.get('Period', '-')} s) -> {actions}"
        )
    if not found:
        print("no alarms on the stack; run `harness alarms deploy`")
    for threshold_id, reason in unwatched.items():
        print(f"{'(no alarm)':<17} {threshold_id:<52} {reason}")
    return ExitCode.OK
