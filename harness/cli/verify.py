"""`harness verify security`: the checklist's security items against the running unit, with evidence.

Exit 0 when every check passed or is NOT EMULATED (said so in the table), 4 when one FAILED, 5 when one
could not be checked (ERROR), 1 when the stack is not up: the sign-off's codes, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Sequence
from typing import Any

from harness.backends import get_backend
from harness.cli.common import NoRunningStackError, settings_from
from harness.security.checks import ERROR, FAIL, SecurityContext, run_checks, verdict
from harness.thresholds import ExitCode

EXIT_CODES = {"PASS": ExitCode.PASS, FAIL: ExitCode.FAIL, ERROR: ExitCode.BROKEN}


def add_verify_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    verify = subparsers.add_parser("verify", help="check the running unit against the document's checklist")
    sub = verify.add_subparsers(dest="what", required=True)
    security = sub.add_parser(
        "security",
        parents=list(parents),
        help="encryption in transit and at rest, access rules, IAM: PASS / FAIL / NOT EMULATED with evidence",
        description=__doc__,
    )
    security.add_argument("--json", action="store_true", help="print the findings as JSON")
    security.set_defaults(func=run_verify_security)


def run_verify_security(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    stack = get_backend(settings).endpoints()
    if stack is None:
        raise NoRunningStackError(settings.state_dir)
    findings = run_checks(SecurityContext(stack, settings.state_dir))
    overall = verdict(findings)
    if args.json:
        print(json.dumps({"verdict": overall, "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        print(format_findings(findings))
        print(f"\nsecurity: {overall}")
    return EXIT_CODES[overall]


def format_findings(findings: Sequence[Any]) -> str:
    lines = []
    item = None
    for f in findings:
        if f.item != item:
            item = f.item
            lines.append(f"\n{item}")
        lines.append(f"  {f.status:12}  {f.check}")
        lines += textwrap.wrap(f.evidence, width=110, initial_indent=" " * 16, subsequent_indent=" " * 16)
    return "\n".join(lines).lstrip("\n")
