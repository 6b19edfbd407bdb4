"""`harness locustfile NAME`: the path of a packaged locustfile, so `locust -f "$(harness locustfile
vector_search)"` works without knowing where the package is installed; `--list` names them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.paths import LOCUSTFILES_DIR

EXIT_OK = 0
EXIT_UNKNOWN = 2


def packaged_locustfiles() -> list[str]:
    return sorted(path.stem for path in LOCUSTFILES_DIR.glob("*.py"))


def cmd_locustfile(args: argparse.Namespace) -> int:
    names = packaged_locustfiles()
    if args.list:
        for listed in names:
            print(f"{listed:<14} {LOCUSTFILES_DIR / f'{listed}.py'}")
        return EXIT_OK
    name = str(args.name or "").removesuffix(".py")
    if name not in names:
        wanted = f"no packaged locustfile {args.name!r}; " if args.name else "name a locustfile; "
        print(f"{wanted}one of: {', '.join(names)}", file=sys.stderr)
        return EXIT_UNKNOWN
    print(LOCUSTFILES_DIR / f"{name}.py")
    return EXIT_OK


def add_locustfile_command(sub: Any) -> None:
    parser = sub.add_parser(
        "locustfile",
        help='print a packaged locustfile\'s path: locust -f "$(harness locustfile vector_search)"',
    )
    parser.add_argument("name", nargs="?", help=f"one of {', '.join(packaged_locustfiles())}")
    parser.add_argument("--list", action="store_true", help="list the packaged locustfiles and their paths")
    parser.set_defaults(func=cmd_locustfile)
