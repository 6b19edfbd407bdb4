"""`harness deploy`: package the GDPR functions and create or update them on the stack's Lambda endpoint.

Contract with harness.cli: `add_deploy_command(subparsers, parents=[common])` registers the
sub-command with `func=run_deploy`; `run_deploy(args)` returns the exit code: 0 deployed (or already up
to date), 1 could not deploy (message on stderr). Settings come from `args.settings` when the caller put
a resolved Settings there, else from `resolve_settings()` with the common `--backend` / `--state-dir`
options if the parser has them (a ConfigError propagates, for main to report).

The endpoint is the running stack's (`harness up`): the embedded backend's local Lambda runtime,
LocalStack in compose, or a real account for the external backend. On a local stack the functions'
secrets (application role through the proxy, Redis) are written first; elsewhere pass their ids.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.app.gdpr_deploy import (
    DEFAULT_ROLE_ARN,
    DeployError,
    definitions,
    deploy_to_stack,
    package,
)
from harness.cli.common import running_stack, settings_from
from harness.config import shipped_unit
from harness.endpoints import EndpointFileError
from harness.sizing import LAMBDA_FUNCTIONS
from harness.thresholds import ExitCode


def add_deploy_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    unit = shipped_unit()
    sizes = ", ".join(f"{n} {m} MB / {unit.lambda_timeouts_s[n]} s" for n, m in unit.lambda_memory_mb.items())
    parser = subparsers.add_parser(
        "deploy",
        parents=list(parents),
        help="package the GDPR Lambda functions and create/update them on the stack's Lambda endpoint",
        description=f"Package and deploy the GDPR functions ({sizes}). Unchanged functions are left alone.",
    )
    parser.add_argument(
        "--function",
        action="append",
        dest="functions",
        choices=list(LAMBDA_FUNCTIONS),
        help="deploy only this function (repeatable; default: all three)",
    )
    parser.add_argument(
        "--db-secret-id",
        help="Secrets Manager id of the DB credentials (RDS JSON shape, host = "
        "the proxy); default: written from the local stack's application role",
    )
    parser.add_argument(
        "--redis-secret-id",
        help="Secrets Manager id of {host, port, password, tls} for Redis; default: written from the local stack",
    )
    parser.add_argument("--role-arn", default=DEFAULT_ROLE_ARN, help="execution role (required on real AWS)")
    parser.add_argument(
        "--package-only",
        type=Path,
        metavar="DIR",
        help="write the zips to DIR and deploy nothing (for uploading them elsewhere)",
    )
    parser.set_defaults(func=run_deploy)
    return parser  # type: ignore[no-any-return]  # argparse's add_parser is typed Any


def run_deploy(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        if args.package_only is not None:
            args.package_only.mkdir(parents=True, exist_ok=True)
            for definition in definitions(args.functions, settings.unit):
                path = args.package_only / f"{definition.name}.zip"
                path.write_bytes(package(definition))
                print(f"{definition.name}: {path} ({path.stat().st_size:,} bytes)")
            return ExitCode.OK
        stack = running_stack(settings)
        endpoint = stack.aws.lambda_url or stack.aws.url or "AWS"
        results = deploy_to_stack(
            stack,
            settings.state_dir,
            names=args.functions,
            db_secret_id=args.db_secret_id,
            redis_secret_id=args.redis_secret_id,
            role_arn=args.role_arn,
            unit=settings.unit,
        )
    except (DeployError, EndpointFileError) as exc:
        print(f"harness deploy: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except (BotoCoreError, ClientError) as exc:
        print(
            f"harness deploy: the AWS endpoint refused or failed ({exc}); check it with `harness status`",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    for result in results:
        print(f"{result.name}: {result.action} ({result.memory_mb} MB, timeout {result.timeout_s} s) at {endpoint}")
    return ExitCode.OK
