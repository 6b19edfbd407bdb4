"""Frames between the runtime server and a worker: a 4-byte big-endian length, then UTF-8 JSON.

The worker reads requests and writes replies on two pipes whose descriptor numbers it finds in its
environment, leaving stdout and stderr to the function's own logging, as Lambda's runtime API keeps
the two apart.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

REQUEST_FD_VARIABLE = "_HARNESS_LAMBDA_REQUEST_FD"
REPLY_FD_VARIABLE = "_HARNESS_LAMBDA_REPLY_FD"
_HEADER = struct.Struct(">I")
# Lambda's synchronous payload limit is 6 MB each way; a frame holds a payload and a little envelope.
MAX_FRAME_BYTES = 8 * 1024 * 1024
# Written by the worker on stderr after an invocation's output, before its reply: the server knows
# every log line of that invocation has arrived once it reads this.
LOG_MARK = "\x1eharness-lambda-end "


class FrameTimeout(TimeoutError):
    pass


class ChannelClosed(EOFError):
    """The other end exited (a worker killed for memory, a crash) or closed the pipe."""


def write_frame(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise FrameTimeout(f"no complete frame within the deadline ({remaining} of {size} bytes missing)")
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                continue
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("the other end closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None) -> dict[str, Any]:
    """Read one frame; deadline is a time.monotonic() value (None waits for ever)."""
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    message = json.loads(_read_exact(fd, size, deadline))
    if not isinstance(message, dict):
        raise ValueError(f"frame is not a JSON object: {type(message).__name__}")
    return message
