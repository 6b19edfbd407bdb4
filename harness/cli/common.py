"""What every `harness` command does the same way: resolve its settings from the common arguments, say that
no stack is running, and check its numeric arguments. In one place so the commands cannot drift apart in
how they read --backend/--state-dir, in the words of the no-stack error, or in how much of a hostile
argument they echo back (cut short, as `brief` cuts a file's values)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from harness.config import Settings, resolve_settings
from harness.endpoints import EndpointFileError, StackEndpoints, load_endpoints
from harness.inputfiles import brief


def say(message: str) -> None:
    """A progress or error line: stderr, so stdout stays the command's result."""
    print(message, file=sys.stderr, flush=True)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings a command runs with: those its caller resolved already (`args.settings`), else the
    common --backend and --state-dir (and --use, where the command has it) over the environment and
    harness.toml."""
    resolved: Settings | None = getattr(args, "settings", None)
    if resolved is not None:
        return resolved
    uses = getattr(args, "use", None)
    return resolve_settings(
        {
            "backend": getattr(args, "backend", None),
            "state_dir": getattr(args, "state_dir", None),
            # `--use FACT=VALUE`: the unit spec's choice for this run, after HARNESS_SPEC_USE's.
            "spec_use": ",".join([os.environ.get("HARNESS_SPEC_USE", ""), *uses]).strip(",") if uses else None,
        }
    )


class NoRunningStackError(EndpointFileError):
    """The state directory holds no running stack (no endpoint file)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(f"no running stack in {state_dir}: start it with `harness up`")


def running_stack(settings: Settings) -> StackEndpoints:
    """The endpoints of the stack running in the settings' state directory, or NoRunningStackError."""
    stack = load_endpoints(settings.state_dir)
    if stack is None:
        raise NoRunningStackError(settings.state_dir)
    return stack


def quoted(text: str) -> str:
    """An argument as an error message shows it: quoted, on one line, cut short when it is long."""
    return brief(repr(text))


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {quoted(text)}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {quoted(text)}") from None


def positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {quoted(text)}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {quoted(text)}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    # float() takes "nan" and "inf", which no rate, duration or target can be.
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {quoted(text)}")
    return value
