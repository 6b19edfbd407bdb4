"""The REPORT line Lambda writes after every invocation, and GB-seconds from it.

Format, as CloudWatch Logs shows it (fields separated by tabs; Init Duration only on a cold start,
Status and Error Type only when the invocation failed inside the runtime):

    REPORT RequestId: <id>\tDuration: 395.99 ms\tBilled Duration: 396 ms\tMemory Size: 512 MB\t
    Max Memory Used: 301 MB\tInit Duration: 265.72 ms
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_FIELD = re.compile(r"^(?P<key>[A-Za-z ]+): (?P<value>.+?)(?: (?P<unit>ms|MB))?$")
_REQUIRED = ("RequestId", "Duration", "Billed Duration", "Memory Size", "Max Memory Used")


class ReportLineError(ValueError):
    """A line that is not a Lambda REPORT line; the message quotes what was wrong."""


@dataclass(frozen=True)
class ReportLine:
    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    # "error" or "timeout" when the runtime failed (out of memory, timed out); None on success.
    status: str | None = None
    error_type: str | None = None

    @property
    def cold_start(self) -> bool:
        return self.init_duration_ms is not None

    @property
    def gb_seconds(self) -> float:
        """What Lambda bills for this invocation: billed seconds times configured GB (1 GB = 1024 MB)."""
        return self.billed_duration_ms / 1000 * self.memory_size_mb / 1024

    def format(self) -> str:
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_duration_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            parts.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
        if self.error_type is not None:
            parts.append(f"Error Type: {self.error_type}")
        return "\t".join(parts)


def billed_duration_ms(duration_ms: float, init_duration_ms: float | None = None) -> int:
    """Lambda bills per started millisecond; since August 2025 the INIT phase of on-demand functions too."""
    return max(1, math.ceil(duration_ms + (init_duration_ms or 0.0)))


def parse_report_line(line: str) -> ReportLine:
    text = line.strip()
    if not text.startswith("REPORT "):
        raise ReportLineError(f"not a REPORT line (it must start with 'REPORT '): {text[:120]!r}")
    fields: dict[str, str] = {}
    for part in text.removeprefix("REPORT ").split("\t"):
        if not part.strip():
            continue
        match = _FIELD.match(part.strip())
        if match is None:
            raise ReportLineError(f"REPORT field {part!r} is not 'Name: value [unit]' in {text[:200]!r}")
        fields[match["key"]] = match["value"]
    missing = [key for key in _REQUIRED if key not in fields]
    if missing:
        raise ReportLineError(f"REPORT line lacks {', '.join(missing)}: {text[:200]!r}")
    try:
        return ReportLine(
            request_id=fields["RequestId"],
            duration_ms=float(fields["Duration"]),
            billed_duration_ms=int(fields["Billed Duration"]),
            memory_size_mb=int(fields["Memory Size"]),
            max_memory_used_mb=int(fields["Max Memory Used"]),
            init_duration_ms=float(fields["Init Duration"]) if "Init Duration" in fields else None,
            status=fields.get("Status"),
            error_type=fields.get("Error Type"),
        )
    except ValueError as exc:
        raise ReportLineError(f"REPORT line has a malformed number ({exc}): {text[:200]!r}") from None


def find_report_line(log_text: str) -> ReportLine:
    """The last REPORT line in a log excerpt (an invoke's LogResult tail or a CloudWatch stream)."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("REPORT "):
            return parse_report_line(line)
    raise ReportLineError(f"no REPORT line in the log excerpt (last lines: {log_text[-300:]!r})")
