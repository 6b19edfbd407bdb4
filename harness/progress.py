"""A small progress printer for long steps: counts, percentage and rate on stderr.

On a terminal it redraws one line; elsewhere (CI logs, `make up` piped) it prints a line every few
seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
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


def transfer_callback(progress: Progress) -> Callable[[int], None]:
    """A boto3 transfer `Callback` that advances `progress` in MiB. boto3 calls it with the bytes moved since
    its last call, from several transfer threads at once."""
    lock = threading.Lock()
    moved = 0

    def advance(n: int) -> None:
        nonlocal moved
        with lock:
            moved += n
            progress.update(moved // 2**20)

    return advance


def note(message: str, enabled: bool = True, stream: TextIO | None = None) -> None:
    if enabled:
        out = stream if stream is not None else sys.stderr
        out.write(message + "\n")
        out.flush()


def clock(seconds: float) -> str:
    """Seconds as m:ss (or h:mm:ss), the way a reader estimates a wait."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StepProgress:
    """A live line per step of a long run (the sign-off's scenarios): step i of n, elapsed, time left,
    and a running verdict. On a terminal one line is redrawn every second by a ticker thread; elsewhere
    (CI logs, pipes) a plain line is printed when a step starts and when it ends, nothing in between."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.tick_s = tick_s
        self.index = 0
        self.step = ""
        self.verdict = ""
        self.durations: list[float] = []
        # Step -> seconds it took last time, for the estimate of what is left.
        self.expected: dict[str, float] = {}
        # Step -> seconds the plan expects (a reference run's time shipped with the steps), for a first run.
        self.planned: dict[str, float] = {}
        # Step -> the most it may take by the size's limits (its load loops times their time cap).
        self.caps: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.remaining_steps: list[str] = []
        self._clock = clock
        self._start = clock()
        self._step_start = self._start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _guess(self, step: str, known_mean: float | None, pace: float, cap_ratio: float) -> float | None:
        if step in self.expected:
            return self.expected[step]
        if step in self.planned:
            return self.planned[step] * pace
        if step in self.caps:
            return self.caps[step] * cap_ratio
        return known_mean

    def pace(self) -> float:
        """How this run's planned steps compare with the plan so far (1 before any finished): the plan is a
        reference machine's times, and a slower or busier machine is slower across the board."""
        timed = [step for step in self.done if self.planned.get(step)]
        if not timed:
            return 1.0
        return sum(self.done[s] for s in timed) / sum(self.planned[s] for s in timed)

    def cap_ratio(self) -> float:
        """How much of their caps this run's capped steps took so far (1 before any finished): a step that
        stops early, or runs at its request count, takes a share of its cap the next one likely repeats."""
        capped = [step for step in self.done if self.caps.get(step)]
        if not capped:
            return 1.0
        return min(1.0, sum(self.done[s] for s in capped) / sum(self.caps[s] for s in capped))

    def left_s(self) -> float | None:
        """Estimated seconds left: each remaining step as long as last run's; else, with a planned time, that
        time at this run's pace against the plan; else, with a cap from the size's limits, its cap scaled by
        the share of their caps this run's steps used; else this run's mean."""
        known_mean = sum(self.durations) / len(self.durations) if self.durations else None
        pace, ratio = self.pace(), self.cap_ratio()
        total = 0.0
        for step in self.remaining_steps:
            guess = self._guess(step, known_mean, pace, ratio)
            if guess is None:
                return None
            total += guess
        current = self._guess(self.step, known_mean, pace, ratio)
        if current is not None:
            total += max(0.0, current - (self._clock() - self._step_start))
        return total

    def bound_s(self) -> float | None:
        """The most the remaining steps may take by the size's limits; None when one has no cap."""
        steps = [self.step, *self.remaining_steps]
        if not steps or any(s not in self.caps for s in steps):
            return None
        elapsed = self._clock() - self._step_start
        return max(0.0, self.caps[self.step] - elapsed) + sum(self.caps[s] for s in self.remaining_steps)

    def line(self) -> str:
        now = self._clock()
        left = self.left_s()
        left_text = "time left unknown" if left is None else f"~{clock(left)} left"
        bound = self.bound_s()
        if bound is not None:
            left_text += f" (at most {clock(bound)} by the size's caps)"
        verdict = f" | so far: {self.verdict}" if self.verdict else ""
        return (
            f"[{self.label}] step {self.index}/{self.total} {self.step} | elapsed {clock(now - self._start)} "
            f"(step {clock(now - self._step_start)}) | {left_text}{verdict}"
        )

    def _write(self, text: str, redraw: bool) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[2K" + text + ("" if redraw else "\n"))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def start_step(self, step: str, remaining: list[str]) -> None:
        self.index += 1
        self.step = step
        self.remaining_steps = remaining
        self._step_start = self._clock()
        if self.tty:
            self._write(self.line(), redraw=True)
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="step-progress", daemon=True)
                self._ticker.start()
        else:
            self._write(self.line(), redraw=False)

    def end_step(self, outcome: str, verdict: str) -> float:
        seconds = self._clock() - self._step_start
        self.durations.append(seconds)
        self.done[self.step] = seconds
        self.verdict = verdict
        self._write(
            f"[{self.label}] step {self.index}/{self.total} {self.step} {outcome} in {seconds:.1f} s"
            f" | so far: {verdict}",
            redraw=False,
        )
        return seconds

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            if self.index:
                self._write(self.line(), redraw=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2 * self.tick_s)
        if self.tty:
            self._write("", redraw=True)
