"""`harness verify security`: the checklist's security items against the running unit, with evidence.

Exit 0 when every check passed or is NOT EMULATED (said so in the table), 4 when one FAILED, 5 when one
could not be checked (ERROR), 1 when the stack is not up: the sign-off's codes, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from harness.backends import get_backend
from harness.config import resolve_settings
from harness.security.checks import ERROR, FAIL, SecurityContext, run_checks, verdict

EXIT_CODES = {"PASS": 0, FAIL: 4, ERROR: 5}


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
    settings = resolve_settings({"backend": args.backend, "state_dir": args.state_dir})
    stack = get_backend(settings).endpoints()
    if stack is None:
        print("the stack is not up: run `harness up` first", file=sys.stderr)
        return 1
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
