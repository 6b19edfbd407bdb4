"""`harness drill NAME`: run one failure drill against the running stack and print its figures.

Exit 0 when every check of the drill held, 1 when one failed or the drill could not run, 2 for a drill
that does not exist. Destructive: refused on an external deployment unless
HARNESS_ALLOW_DESTRUCTIVE=1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.backends.guard import require_destructive_allowed
from harness.backup.unit import restore_spec
from harness.cli.common import NoRunningStackError, running_stack, settings_from
from harness.config import Settings
from harness.data.app_role import app_endpoint
from harness.drills import cache, database, lambda_export, network, proxy, service_kills
from harness.drills.result import DrillResult
from harness.endpoints import StackEndpoints
from harness.thresholds import ExitCode

Runner = Callable[[Backend, StackEndpoints, Settings], DrillResult]


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _database(backend: Backend, stack: StackEndpoints, settings: Settings) -> DrillResult:
    target, not_emulated = database.restore_target(settings, stack)
    spec = restore_spec(settings, stack)
    return database.run(backend, stack, target, spec, settings.state_dir / "pgbouncer", _report, not_emulated)


DRILLS: dict[str, tuple[str, Runner]] = {
    "services": (
        "SIGKILL each service, `harness up`, check nothing the unit holds was lost",
        lambda b, s, cfg: service_kills.run(b, s, _report),
    ),
    "database": (
        "kill -9 the postmaster under writes (crash recovery), then lose it: restore, switch the proxy, resume",
        lambda b, s, cfg: _database(b, s, cfg),
    ),
    "cache": (
        "SIGKILL Redis under cache-aside reads: errors, degraded reads, hit-rate recovery cold and warmed",
        lambda b, s, cfg: cache.run(b, s, app_endpoint(s, cfg.state_dir), _report),
    ),
    "proxy": (
        "restart PgBouncer under writes: failed requests, time to reconnect",
        lambda b, s, cfg: proxy.run(b, s, _report),
    ),
    "network": (
        "latency, jitter, resets and blackholes through fault proxies in front of the proxy and Redis",
        lambda b, s, cfg: network.run(
            s, app_endpoint(s, cfg.state_dir), _report, cfg.fault_pg_port, cfg.fault_redis_port, cfg.state_dir
        ),
    ),
    "lambda": (
        "a GDPR export killed mid-way (timeout, out of memory) and retried; a deletion retried",
        lambda b, s, cfg: lambda_export.run(s, app_endpoint(s, cfg.state_dir, via_proxy=False), cfg.state_dir, _report),
    ),
}


def add_drill_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    listing = "; ".join(f"{name}: {text}" for name, (text, _) in DRILLS.items())
    parser = subparsers.add_parser(
        "drill",
        parents=list(parents),
        help="run a failure drill (services, database, cache, proxy, network, lambda) with measured recovery",
        description=f"Drills: {listing}.",
    )
    parser.add_argument("name", help=f"one of {', '.join(DRILLS)}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run_drill)


def run_drill(args: argparse.Namespace) -> int:
    if args.name not in DRILLS:
        print(f"harness drill: no drill {args.name!r}; drills: {', '.join(DRILLS)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    settings = settings_from(args)
    try:
        stack = running_stack(settings)
    except NoRunningStackError as exc:
        print(f"harness drill: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    require_destructive_allowed(settings, f"the {args.name} drill")
    backend = get_backend(settings)
    not_emulated = lambda_export.not_emulated_reason(backend, stack) if args.name == "lambda" else ""
    if not_emulated:
        print(f"harness drill: the lambda drill is NOT EMULATED here: {not_emulated}", file=sys.stderr)
        return ExitCode.FAILED
    result = DRILLS[args.name][1](backend, stack, settings)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1, default=str))
    else:
        print("\n".join(result.lines()))
    return ExitCode.OK if result.passed else ExitCode.FAILED
