"""A small progress printer for long steps: counts, percentage and rate on stderr.

On a terminal it redraws one line; elsewhere (CI logs, `make up` piped) it prints a line every few
seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        unit: str = "rows",
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.status = ""
        self._tty = self.stream.isatty()
        self._interval = 0.2 if self._tty else 5.0
        self._start = time.perf_counter()
        self._last_draw = self._start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int, status: str | None = None) -> None:
        self.done = done
        if status is not None:
            self.status = status
        now = time.perf_counter()
        if self.enabled and now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(final=False)

    def _line(self) -> str:
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "")
        percent = f" {100 * self.done / self.total:5.1f}%" if self.total else ""
        status = f" [{self.status}]" if self.status else ""
        return (
            f"{self.label}: {count} {self.unit}{percent} {self.rate():,.0f} {self.unit}/s {self.elapsed:.1f}s{status}"
        )

    def _draw(self, final: bool) -> None:
        line = self._line()
        if self._tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A failed step keeps its last figures on screen, which is where the reader will look.
        self.close()


def note(message: str, enabled: bool = True, stream: TextIO | None = None) -> None:
    if enabled:
        out = stream if stream is not None else sys.stderr
        out.write(message + "\n")
        out.flush()
