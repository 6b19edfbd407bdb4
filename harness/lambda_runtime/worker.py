"""The runtime inside one execution environment: imports the handler once (INIT), then runs invocations.

Started by the server as `python -m harness.lambda_runtime.worker` in the function's code directory,
with Lambda's environment variables, its memory cgroup and (after INIT) its CPU quota, either as a process
(requests and replies on two inherited pipes) or as a container's command (requests on stdin, replies on
what was stdout: fd 1 is pointed at stderr before the handler is imported, so what the function prints is
a log line, as Lambda's runtime API keeps the two apart). It imports only the standard library, so the
memory it reports is the function's, not the harness's.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

from harness.lambda_runtime.protocol import (
    LOG_MARK,
    REPLY_FD_VARIABLE,
    REQUEST_FD_VARIABLE,
    ChannelClosed,
    read_frame,
    write_frame,
)
from harness.lambda_runtime.sandbox import (
    FORWARD_VARIABLE,
    USAGE_VARIABLE,
    cgroup_peak_bytes,
    own_peak_rss_bytes,
    parse_forwards,
    reset_own_peak_rss,
    start_forwarding,
)


class LambdaContext:
    """The attributes and method of the context object Lambda passes to a Python handler."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id: str = request["request_id"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.invoked_function_arn: str = request["function_arn"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.client_context = request.get("client_context")
        self.identity = None
        self._deadline_epoch_ms: int = request["deadline_epoch_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_epoch_ms - int(time.time() * 1000))


def _error(exc: BaseException, request_id: str = "") -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(frames)],
    }


def _log_error(exc: BaseException) -> None:
    # The shape the Python runtime on AWS logs an unhandled exception in.
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    print(f"[ERROR] {type(exc).__name__}: {exc}\n{text}", file=sys.stderr)


def _end_of_invocation(request_id: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"{LOG_MARK}{request_id}\n")
    sys.stderr.flush()


def _load_handler() -> Any:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{os.environ['_HANDLER']}': not enough values to unpack (expected 2, got 1)")
    module = importlib.import_module(module_name.replace("/", "."))
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'") from None


def _channel() -> tuple[int, int]:
    """The request and reply descriptors: the inherited pipes, or stdin and a copy of stdout."""
    if REQUEST_FD_VARIABLE in os.environ:
        return int(os.environ.pop(REQUEST_FD_VARIABLE)), int(os.environ.pop(REPLY_FD_VARIABLE))
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    return 0, reply_fd


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    request_fd, reply_fd = _channel()
    forwards = parse_forwards(os.environ.pop(FORWARD_VARIABLE, ""))
    if forwards:
        start_forwarding(forwards)
    report_usage = os.environ.pop(USAGE_VARIABLE, "") == "1"
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    try:
        handler = _load_handler()
    except Exception as exc:
        _log_error(exc)
        kind = "Runtime.ImportModuleError" if isinstance(exc, ImportError) else "Runtime.HandlerNotFound"
        message = str(exc)
        if kind == "Runtime.ImportModuleError":
            message = f"Unable to import module '{os.environ['_HANDLER'].rpartition('.')[0]}': {exc}"
        _end_of_invocation("init")
        write_frame(reply_fd, {"type": "init_error", "error": {"errorMessage": message, "errorType": kind}})
        return 1
    _end_of_invocation("init")
    write_frame(reply_fd, {"type": "ready"})
    while True:
        try:
            request = read_frame(request_fd)
        except ChannelClosed:
            return 0
        request_id = request["request_id"]
        reply: dict[str, Any]
        if report_usage:
            reset_own_peak_rss()
        cpu_before = _cpu_seconds()
        try:
            result = handler(json.loads(request["payload"]), LambdaContext(request))
            try:
                reply = {"type": "result", "payload": json.dumps(result)}
            except (TypeError, ValueError) as exc:
                reply = {
                    "type": "error",
                    "error": {
                        "errorMessage": f"Unable to marshal response: {exc}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": request_id,
                        "stackTrace": [],
                    },
                }
        except Exception as exc:
            _log_error(exc)
            reply = {"type": "error", "error": _error(exc, request_id)}
        if report_usage:
            peak = max(cgroup_peak_bytes() or 0, own_peak_rss_bytes())
            reply["usage"] = {"peak_bytes": peak, "cpu_seconds": _cpu_seconds() - cpu_before}
        _end_of_invocation(request_id)
        write_frame(reply_fd, reply)


if __name__ == "__main__":
    sys.exit(main())
