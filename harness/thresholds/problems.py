"""What is wrong in a threshold file, with its position: shared by the YAML reader, loading and overrides.

Every problem in a file is collected before anything is raised, so one `harness thresholds check` shows all
there is to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    origin: str
    line: int | None
    column: int | None
    message: str
    # The offending expression, shown under the message with a caret at `caret` (1-based).
    excerpt: str | None = None
    caret: int | None = None

    def __str__(self) -> str:
        where = self.origin
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.excerpt is not None and self.caret is not None:
            text += f"\n    {self.excerpt}\n    {' ' * (self.caret - 1)}^"
        return text


class ThresholdConfigError(ValueError):
    """One or more problems in threshold files; str() lists them all, one per paragraph."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
