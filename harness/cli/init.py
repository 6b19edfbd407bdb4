"""`harness init [DIR]`: set up a team's repository to sign off on its unit (harness.scaffold)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.scaffold import InitError, default_requirement, scaffold

EXIT_OK = 0
EXIT_REFUSED = 2
NEXT_STEPS = (
    ("harness up", "start the unit (harness down stops it)"),
    ("harness signoff --size ci --thresholds thresholds.yaml", "the sign-off CI runs"),
    ("harness seed --schema migrations --data data.yaml", "your own schema and data"),
    ("HARNESS_WORKLOAD=workload.yaml locust -f locustfile.py", "your own load"),
)


def cmd_init(args: argparse.Namespace) -> int:
    target: Path = args.dir
    try:
        written = scaffold(target, force=args.force, requirement=args.requirement)
    except (InitError, OSError) as exc:
        print(f"harness init: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    for item in written:
        print(f"{item.action:<9} {item.path}")
    print("\nNext:" if target == Path(".") else f"\nNext, in {target}:")
    for command, why in NEXT_STEPS:
        print(f"  {command:<56} {why}")
    print("Commit the files: the GitHub Actions and GitLab CI files run the same sign-off in CI.")
    return EXIT_OK


def add_init_command(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="set up a repository to sign off on its unit: settings, thresholds, spec, migrations, CI",
        description="Writes harness.toml, thresholds.yaml, unit.yaml (and its design document), data.yaml, "
        "workload.yaml, migrations/, locustfile.py, CI workflows for GitHub Actions and GitLab, and .gitignore "
        "entries. Refuses (writing nothing) when a file exists, unless --force.",
    )
    parser.add_argument("dir", nargs="?", type=Path, default=Path("."), help="the repository (default: here)")
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    parser.add_argument(
        "--requirement",
        metavar="SPEC",
        help=f"what the CI files pip-install (default {default_requirement()}, from the package index); "
        "a wheel's URL or a git+https URL where the index does not have it",
    )
    parser.set_defaults(func=cmd_init)
