"""What unit and integration tests both need: running a command under a pseudo-terminal, where the progress
lines redraw themselves as they do for a user at a terminal.

A fixture rather than an importable name, as tests/unit/conftest.py explains.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import pytest


class PtyRun(Protocol):
    def __call__(
        self,
        command: list[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 600,
        on_output: Callable[[str], None] | None = None,
    ) -> tuple[int, str]: ...


def _run_in_pty(
    command: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
    on_output: Callable[[str], None] | None = None,
) -> tuple[int, str]:
    """The command's exit code and everything it wrote to its terminal (stdout and stderr both).

    `on_output` sees the output so far after each read, so a test can answer what the command shows (let a
    step it holds go on) instead of guessing how long that takes. The command is killed at `timeout_s`.
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(
        command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=None if env is None else dict(env)
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if on_output is not None:
                    on_output(b"".join(chunks).decode(errors="replace"))
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
        code = process.wait(timeout=30)
    return code, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def run_in_pty() -> PtyRun:
    return _run_in_pty
