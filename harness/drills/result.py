"""What a drill reports: its figures (seconds, counts, curves), its checks, and what it could not emulate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DrillResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drill": self.name,
            "passed": self.passed,
            "figures": self.figures,
            "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in self.checks],
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out = [f"drill {self.name}: {'PASS' if self.passed else 'FAIL'}"]
        out += [f"  {key} = {value}" for key, value in self.figures.items() if not isinstance(value, (list, dict))]
        out += [f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in self.checks]
        out += [f"  note: {note}" for note in self.notes]
        return out
