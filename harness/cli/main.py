"""`harness`: bring the Database Unit up or down, show its status, export its endpoints."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.backends import get_backend
from harness.backends.base import StackStatus
from harness.cli.alarms import add_alarms_command
from harness.cli.backup import add_backup_command
from harness.cli.capacity import add_capacity_command
from harness.cli.common import NoRunningStackError, say, settings_from
from harness.cli.deploy import add_deploy_command
from harness.cli.drill import add_drill_command
from harness.cli.init import add_init_command
from harness.cli.locustfile import add_locustfile_command
from harness.cli.reports import (
    add_override_arguments,
    add_report_commands,
    add_threshold_commands,
)
from harness.cli.seed import add_seed_command
from harness.cli.spec import add_spec_commands
from harness.cli.verify import add_verify_command
from harness.cli.workload import add_workload_command
from harness.config import ConfigError
from harness.endpoints import EndpointFileError
from harness.paths import SCENARIOS_DIR, harness_version
from harness.services.process import ServiceError
from harness.thresholds import ExitCode, ThresholdConfigError, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE


def cmd_up(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    began = time.monotonic()
    endpoints = get_backend(settings).up(say)
    say(f"stack ready in {time.monotonic() - began:.1f} s ({settings.backend}, state in {settings.state_dir})")
    print(f"proxy   {endpoints.proxy.url()}")
    print(f"direct  {endpoints.direct.url()}")
    print(f"redis   {endpoints.redis.url()}")
    print(
        f"aws     {endpoints.aws.url} ({endpoints.aws.region}), bucket {endpoints.resources.exports_bucket}, "
        f"secret {endpoints.resources.db_secret_id}"
    )
    print('Passwords are in `harness env`; eval "$(harness env)" exports them.')
    return ExitCode.OK


def cmd_down(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    get_backend(settings).down(say, purge=args.purge)
    say("stack down")
    return ExitCode.OK


def format_status(status: StackStatus) -> str:
    headers = ("service", "endpoint", "version", "sizing", "health")
    rows = [
        (s.name, s.endpoint, s.version, s.sizing, "ok" if s.healthy else f"DOWN: {s.detail}") for s in status.services
    ]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    cgroup = status.facts.get("cgroup")
    if cgroup:
        if cgroup.get("enforced"):
            lines.append(
                f"cgroup: PostgreSQL capped at {cgroup['memory_limit_bytes'] // 2**20} MiB and "
                f"{cgroup['cpu_limit_vcpus']:g} vCPU ({cgroup['version']}, {cgroup['detail']})"
            )
        else:
            lines.append(f"cgroup: PostgreSQL NOT capped: {cgroup['detail']}")
    credits = status.facts.get("credits")
    if credits:
        lines.append(f"credits: {credits['detail']}")
        storage = credits["storage"]
        capped = (
            f"capped at {storage['capped_read_iops']} IOPS, {storage['capped_read_bytes_s'] / 1e6:g} MB/s"
            if storage.get("capped_read_iops")
            else "NOT capped"
        )
        lines.append(
            f"storage: {storage['type']} {storage['allocated_gib']} GiB (baseline {storage['baseline_iops']} IOPS, "
            f"burst {storage['burst_iops']}): {capped}; {storage['detail']}"
        )
    tls = status.facts.get("tls")
    if tls:
        lines.append(f"tls ({tls['mode']}): proxy {tls['proxy']}; redis {tls['redis']}; direct {tls['direct']}")
        if "certificate" in tls:
            lines.append(f"tls: clients verify against {tls['certificate']['ca_bundle']} (HARNESS_CA_BUNDLE)")
    for what, why in status.facts.get("not_emulated", {}).items():
        lines.append(f"NOT EMULATED {what.replace('_', ' ')}: {why}")
    if "state_dir" in status.facts:
        lines.append(f"state: {status.facts['state_dir']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    status = get_backend(settings_from(args)).status()
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    elif not status.services:
        print(f"stack is not up ({status.facts.get('note', 'no services')}); start it with `harness up`")
    else:
        print(format_status(status))
    return ExitCode.OK if status.healthy else ExitCode.FAILED


def cmd_env(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    endpoints = get_backend(settings).endpoints()
    if endpoints is None:
        raise NoRunningStackError(settings.state_dir)
    for name, value in endpoints.environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return ExitCode.OK


def cmd_signoff(args: argparse.Namespace) -> int:
    from harness.signoff.run import SIZE_SEED_PROFILES, signoff

    if args.size not in SIZE_SEED_PROFILES:
        say(f"--size must be one of {', '.join(SIZE_SEED_PROFILES)}")
        return ExitCode.BAD_INPUT
    settings = settings_from(args)
    try:
        # Thresholds are parsed before anything starts: a typo must not cost a whole run.
        thresholds = load_thresholds(args.thresholds, args.override, args.sets, unit_facts=settings.unit.facts)
    except (ThresholdConfigError, OSError) as exc:
        say(f"thresholds are invalid; nothing was run:\n{exc}")
        return ExitCode.BROKEN
    return signoff(
        settings,
        thresholds,
        size=args.size,
        scenarios=args.scenarios,
        reports_root=args.reports,
        keep_up=args.keep_up,
        pytest_args=args.pytest_args,
        report=say,
        thresholds_file=args.thresholds,
        threshold_overrides=args.override,
        threshold_sets=args.sets,
        drained=settings.signoff_drained if args.drained is None else args.drained,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {harness_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=("embedded", "compose", "external"), help="overrides HARNESS_BACKEND")
    common.add_argument("--state-dir", help="overrides HARNESS_STATE_DIR (default .harness)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", parents=[common], help="start the stack (a no-op when it is up)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", parents=[common], help="stop every process the stack started")
    down.add_argument("--purge", action="store_true", help="also delete the state directory (data, passwords)")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", parents=[common], help="probe each service; exit 1 if any is down")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    env = sub.add_parser("env", parents=[common], help="print export lines for the running stack's endpoints")
    env.set_defaults(func=cmd_env)

    add_seed_command(sub, parents=[common])
    add_backup_command(sub, parents=[common])
    add_drill_command(sub, parents=[common])
    add_deploy_command(sub, parents=[common])
    add_workload_command(sub, parents=[common])
    add_alarms_command(sub, parents=[common])
    add_capacity_command(sub, parents=[common])
    add_verify_command(sub, parents=[common])
    add_threshold_commands(sub)
    add_report_commands(sub)
    add_spec_commands(sub, parents=[common])
    add_init_command(sub)
    add_locustfile_command(sub)

    signoff = sub.add_parser(
        "signoff",
        parents=[common],
        help="the pre-release run: stack, seed, scenarios, thresholds, report",
        description="Exit 0 PASS, 3 WARN, 4 FAIL (a critical breach or a failed scenario check), "
        "5 the run broke (a metric never measured, a scenario that could not run), 1 the stack failed.",
    )
    signoff.add_argument("--size", default="signoff", help="scenario size: ci (minutes) or signoff (default)")
    signoff.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS_FILE)
    add_override_arguments(signoff)
    signoff.add_argument(
        "--use",
        action="append",
        default=[],
        metavar="FACT=VALUE",
        help="choose a unit spec fact's value for this run (as `harness spec show --use`); repeatable",
    )
    signoff.add_argument(
        "--scenarios", type=Path, default=SCENARIOS_DIR, help="the scenarios to run (default: the packaged ones)"
    )
    signoff.add_argument("--reports", type=Path, default=Path("reports"), help="reports/<time>/ is written here")
    signoff.add_argument("--keep-up", action="store_true", help="leave a stack this run started running")
    signoff.add_argument(
        "--drained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="after the fresh pass, run vector search, cache and pooling again on a drained unit "
        "(default: the signoff_drained setting, off)",
    )
    signoff.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --, e.g. -- -k pooling")
    signoff.set_defaults(func=cmd_signoff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except ConfigError as exc:
        say(f"configuration error: {exc}")
        return ExitCode.BAD_INPUT
    except (ServiceError, EndpointFileError) as exc:
        say(f"error: {exc}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        say("interrupted")
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
