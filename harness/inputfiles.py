"""Files a user hands the CLI (settings, specs, models, workloads, results): read and parsed with one set of
refusals, so each reader names the file and says what is wrong instead of raising a traceback.

The hostile-input sweep (tests/unit/test_hostile_files.py) found what these catch: text that is not UTF-8,
nesting past the parsers' recursion, values the parsers cannot construct, and messages that echoed
megabytes of the input.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

# A refusal quotes at most this much of the parser's complaint: a message says what and where, it does not
# echo megabytes of the input back (found by the hostile-input sweep, tests/unit/test_hostile_files.py).
QUOTE_LIMIT = 300


class InputFileError(ValueError):
    """A user's file that cannot be read or parsed; each reader re-raises it as its own error."""


def brief(text: object, limit: int = QUOTE_LIMIT) -> str:
    """`text` on one line, cut to `limit` characters (a parser's message or a value from the file)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + f"... ({len(flat) - limit} more characters)"


def read_input_text(path: Path, what: str) -> str:
    """The file as text, or InputFileError naming it: missing, unreadable, or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None


def parse_input_yaml(text: str, path: Path, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputFileError(f"{what} {path} is not valid YAML: {brief(exc)}") from None
    except ValueError as exc:
        # The constructors' own: a 5,000-digit integer, a timestamp in month 13.
        raise InputFileError(f"{what} {path} holds a value YAML cannot represent: {brief(exc)}") from None
    except RecursionError:
        # PyYAML's composer recurses once per level: a few thousand `[` exhaust the stack.
        raise InputFileError(f"{what} {path} nests too deeply to read; flatten it") from None


def parse_input_toml(text: str, path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{what} {path}: not valid TOML: {brief(exc)}") from None
    except ValueError as exc:
        raise InputFileError(f"{what} {path} holds a value TOML cannot represent: {brief(exc)}") from None
    except RecursionError:
        raise InputFileError(f"{what} {path} nests too deeply to read; flatten it") from None


def load_input_yaml(path: Path, what: str) -> Any:
    return parse_input_yaml(read_input_text(path, what), path, what)
