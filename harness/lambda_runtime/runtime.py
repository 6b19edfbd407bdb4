"""Invoking the functions: their warm execution environments, the concurrency limit, and what an invoke returns.

Lambda semantics kept here: an invoke reuses an idle environment of the function's current version
(warm) or starts a new one (cold, with Init Duration); environments are discarded after a timeout, an
out-of-memory kill or a configuration/code change, and after IDLE_TIMEOUT_S without use; beyond the
account's concurrency limit an invoke is throttled (429 TooManyRequestsException). Which functions exist,
and their configuration, is the registry's (registry.py): this module only runs the version it is given.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.lambda_runtime.environment import (
    MIB,
    EnvironmentFailure,
    EnvironmentKind,
    ExecutionEnvironment,
    FunctionSpec,
    Outcome,
    ProcessEnvironments,
    new_env_id,
)
from harness.lambda_runtime.publisher import CloudWatchPublisher
from harness.lambda_runtime.registry import MAX_UNZIPPED_BYTES, MAX_ZIP_BYTES, FunctionRegistry, LambdaApiError
from harness.lambda_runtime.report_line import ReportLine, billed_duration_ms
from harness.services.osuser import ServerUser

# Lambda keeps an idle environment for minutes (not documented, observed 5-15); local memory is finite.
IDLE_TIMEOUT_S = 600.0
REAP_INTERVAL_S = 10.0
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
LOG_RESULT_BYTES = 4096


@dataclass
class InvokeResult:
    status: int
    payload: bytes
    function_error: str | None
    log_tail: str
    report: ReportLine
    cpu_seconds: float


@dataclass(frozen=True)
class RuntimeOptions:
    state_dir: Path
    region: str
    concurrency_limit: int
    # "auto": cap each environment with a cgroup where the machine allows; "require": refuse to run
    # without; "off": never (memory is then sampled, CPU not capped).
    cgroups: str
    cgroup_prefix: str
    # Variables every environment gets: PATH, credentials, AWS_ENDPOINT_URL of the emulator...
    base_env: dict[str, str]
    idle_timeout_s: float = IDLE_TIMEOUT_S


class LambdaRuntime:
    def __init__(
        self,
        options: RuntimeOptions,
        user: ServerUser,
        publisher: CloudWatchPublisher | None,
        environments: EnvironmentKind | None = None,
    ) -> None:
        """`environments`: where execution environments run; worker processes (with cgroups per
        options.cgroups) unless another kind is given."""
        self.options = options
        self.user = user
        self.publisher = publisher
        self.envs_dir = options.state_dir / "environments"
        self.registry = FunctionRegistry(options.state_dir / "functions", options.region, user, self._retire)
        self._lock = threading.Lock()
        # Idle environments by function name; each runs the version it was started with (env.spec).
        self._idle: dict[str, list[ExecutionEnvironment]] = {}
        self._in_flight = 0
        self._live: set[ExecutionEnvironment] = set()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, daemon=True, name="idle-reaper")
        self.environments = environments or ProcessEnvironments(options.cgroups, options.cgroup_prefix, user)

    # -- set-up -----------------------------------------------------------------------------------

    def start(self) -> None:
        # Environments of a previous run are gone with their workers; their working directories are not.
        shutil.rmtree(self.envs_dir, ignore_errors=True)
        self.envs_dir.mkdir(parents=True)
        self.environments.prepare(self.envs_dir)
        restored = self.registry.load()
        if restored:
            print(
                f"lambda runtime: restored {len(restored)} functions from {self.registry.functions_dir}",
                file=sys.stderr,
                flush=True,
            )
        self._reaper.start()

    def shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            live = list(self._live)
            self._live.clear()
            self._idle.clear()
        for env in live:
            env.kill()
        self._reaper.join(timeout=REAP_INTERVAL_S)

    # -- invoke -----------------------------------------------------------------------------------

    def invoke(self, name: str, payload: bytes, client_context: str | None = None) -> InvokeResult:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise LambdaApiError(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
            )
        text = payload.decode("utf-8", "replace").strip() or "{}"
        try:
            json.loads(text)
        except ValueError:
            raise LambdaApiError(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            ) from None
        with self._lock:
            spec = self.registry.spec(name)
            if self._in_flight >= self.options.concurrency_limit:
                throttled = True
            else:
                throttled = False
                self._in_flight += 1
                concurrent = self._in_flight
                env = self._take_idle(spec)
        if throttled:
            self._metric(spec.name, "Throttles", 1, "Count")
            raise LambdaApiError(
                429, "TooManyRequestsException", "Rate Exceeded.", Reason="ConcurrentInvocationLimitExceeded"
            )
        request_id = str(uuid.uuid4())
        try:
            self._metric(spec.name, "ConcurrentExecutions", concurrent, "Count")
            return self._run(spec, env, request_id, text, client_context)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _run(
        self,
        spec: FunctionSpec,
        env: ExecutionEnvironment | None,
        request_id: str,
        text: str,
        client_context: str | None,
    ) -> InvokeResult:
        log: list[str] = []
        if env is None:
            env_id = new_env_id()
            env = self.environments.new(spec, env_id, self.envs_dir / env_id, self.options.base_env)
            with self._lock:
                self._live.add(env)
            log.append(f"INIT_START Runtime Version: {spec.runtime}.local\tRuntime Version ARN: local")
            try:
                outcome = env.start()
            except (EnvironmentFailure, OSError, subprocess.SubprocessError) as exc:
                self._return(spec, env)
                message = f"could not start an execution environment: {exc}"
                raise LambdaApiError(500, "ServiceException", message) from exc
            log.extend(env.init_log)
        else:
            outcome = None
        log.append(f"START RequestId: {request_id} Version: $LATEST")
        if outcome is None:
            deadline_ms = int(time.time() * 1000) + spec.timeout_s * 1000
            request = {
                "request_id": request_id,
                "payload": text,
                "function_arn": spec.arn,
                "deadline_epoch_ms": deadline_ms,
                "client_context": _decode_client_context(client_context),
            }
            outcome = env.invoke(request)
        log.extend(outcome.log_lines)
        self._return(spec, env)
        return self._result(spec, env.log_stream, request_id, outcome, log)

    def _take_idle(self, spec: FunctionSpec) -> ExecutionEnvironment | None:
        """The most recently used idle environment of this version, if any; the caller holds the lock."""
        idle = self._idle.get(spec.name, [])
        for index in range(len(idle) - 1, -1, -1):
            if idle[index].spec == spec:
                return idle.pop(index)
        return None

    def _return(self, spec: FunctionSpec, env: ExecutionEnvironment) -> None:
        with self._lock:
            keep = env.alive and self.registry.current(spec.name) == spec and not self._stop.is_set()
            if keep:
                self._idle.setdefault(spec.name, []).append(env)
            else:
                self._live.discard(env)
        if not keep:
            env.kill()

    def _retire(self, name: str) -> None:
        """A function was replaced by a new version or deleted: its idle environments go now."""
        with self._lock:
            stale = self._idle.pop(name, [])
            for env in stale:
                self._live.discard(env)
        for env in stale:
            env.kill()

    def _result(
        self, spec: FunctionSpec, stream: str, request_id: str, outcome: Outcome, log: list[str]
    ) -> InvokeResult:
        payload, function_error, status, error_type = outcome.payload, None, None, None
        if outcome.kind == "ok" and len(payload) > MAX_PAYLOAD_BYTES:
            outcome = replace(
                outcome,
                kind="error",
                error={
                    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} "
                    "bytes).",
                    "errorType": "Function.ResponseSizeTooLarge",
                },
            )
        if outcome.kind == "timeout":
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout_s:.2f} seconds"
            error = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            log.append(f"{_utc_now()} {request_id} Task timed out after {spec.timeout_s:.2f} seconds")
            status = "timeout"
        elif outcome.kind in ("oom", "crash"):
            error_type = "Runtime.OutOfMemory" if outcome.kind == "oom" else "Runtime.ExitError"
            message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            error = {"errorType": error_type, "errorMessage": message}
            log.extend([message, error_type])
            status = "error"
        elif outcome.kind == "init_error":
            error = {**outcome.error, "requestId": request_id, "stackTrace": outcome.error.get("stackTrace", [])}
            error_type = str(outcome.error.get("errorType", "Runtime.Unknown"))
            status = "error"
        else:
            error = outcome.error
        if outcome.kind != "ok":
            payload, function_error = json.dumps(error).encode(), "Unhandled"
        # Rounded as the REPORT line prints them, so its Billed Duration follows from its own figures.
        duration = round(outcome.duration_ms, 2) if outcome.kind != "init_error" else 0.0
        init = round(outcome.init_duration_ms, 2) if outcome.init_duration_ms is not None else None
        report = ReportLine(
            request_id=request_id,
            duration_ms=duration,
            billed_duration_ms=billed_duration_ms(duration, init),
            memory_size_mb=spec.memory_mb,
            max_memory_used_mb=max(1, round(outcome.max_memory_bytes / MIB)),
            init_duration_ms=init,
            status=status,
            error_type=error_type,
        )
        log.extend([f"END RequestId: {request_id}", report.format()])
        if not self.environments.enforced:
            # CPU share is not enforced here: show what the invocation really consumed beside its duration.
            log.append(f"HARNESS RequestId: {request_id}\tCPU Time: {outcome.cpu_seconds * 1000:.2f} ms (not capped)")
        if self.publisher is not None:
            self.publisher.log(f"/aws/lambda/{spec.name}", stream, log)
        self._metric(spec.name, "Invocations", 1, "Count")
        self._metric(spec.name, "Duration", duration, "Milliseconds")
        self._metric(spec.name, "Errors", 1 if function_error else 0, "Count")
        tail = "\n".join(log) + "\n"
        encoded = tail.encode()[-LOG_RESULT_BYTES:]
        log_tail = base64.b64encode(encoded).decode()
        return InvokeResult(200, payload, function_error, log_tail, report, outcome.cpu_seconds)

    def _metric(self, function_name: str, metric: str, value: float, unit: str) -> None:
        if self.publisher is not None:
            self.publisher.metric(function_name, metric, value, unit)

    # -- idle environments ------------------------------------------------------------------------

    def _reap_loop(self) -> None:
        while not self._stop.wait(REAP_INTERVAL_S):
            self.reap_idle(time.monotonic())

    def reap_idle(self, now: float) -> int:
        expired: list[ExecutionEnvironment] = []
        with self._lock:
            for name, idle in self._idle.items():
                keep = [e for e in idle if now - e.last_used < self.options.idle_timeout_s]
                expired.extend(e for e in idle if e not in keep)
                self._idle[name] = keep
            for env in expired:
                self._live.discard(env)
        for env in expired:
            env.kill()
        return len(expired)

    def account_settings(self) -> dict[str, Any]:
        return {
            "AccountLimit": {
                "ConcurrentExecutions": self.options.concurrency_limit,
                "UnreservedConcurrentExecutions": self.options.concurrency_limit,
                "CodeSizeZipped": MAX_ZIP_BYTES,
                "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            },
            "AccountUsage": self.registry.usage(),
        }

    def facts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "concurrency_limit": self.options.concurrency_limit,
                "in_flight": self._in_flight,
                "functions": {
                    name: {
                        "memory_mb": spec.memory_mb,
                        "timeout_s": spec.timeout_s,
                        "warm": sum(1 for e in self._idle.get(name, []) if e.spec == spec),
                    }
                    for name, spec in self.registry.specs().items()
                },
                "environments": len(self._live),
                **self.environments.facts(),
                "idle_timeout_s": self.options.idle_timeout_s,
            }


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _decode_client_context(header: str | None) -> Any:
    if not header:
        return None
    with contextlib.suppress(ValueError):
        return json.loads(base64.b64decode(header))
    return None
