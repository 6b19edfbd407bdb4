"""Structured logs: one JSON object per line on stdout, which Lambda ships to CloudWatch Logs as one event."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any


def log(level: str, message: str, context: Any = None, **fields: Any) -> None:
    record = {
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
        "request_id": getattr(context, "aws_request_id", None),
        "message": message,
        **fields,
    }
    sys.stdout.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()
