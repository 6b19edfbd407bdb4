"""The functions, their warm execution environments, the concurrency limit, and what an invoke returns.

Lambda semantics kept here: an invoke reuses an idle environment of the function's current version
(warm) or starts a new one (cold, with Init Duration); environments are discarded after a timeout, an
out-of-memory kill or a configuration/code change, and after IDLE_TIMEOUT_S without use; beyond the
account's concurrency limit an invoke is throttled (429 TooManyRequestsException).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.lambda_runtime.environment import (
    MIB,
    EnvironmentFailure,
    ExecutionEnvironment,
    FunctionSpec,
    Outcome,
    new_env_id,
)
from harness.lambda_runtime.publisher import CloudWatchPublisher
from harness.lambda_runtime.report_line import ReportLine, billed_duration_ms
from harness.services.cgroups import CgroupLimiter
from harness.services.osuser import ServerUser

ACCOUNT_ID = "000000000000"
# Lambda keeps an idle environment for minutes (not documented, observed 5-15); local memory is finite.
IDLE_TIMEOUT_S = 600.0
REAP_INTERVAL_S = 10.0
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
LOG_RESULT_BYTES = 4096
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLER = re.compile(r"^[^\s]+\.[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_VARIABLES = {
    "_HANDLER",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}


class LambdaApiError(Exception):
    """An error the Lambda API returns: HTTP status, AWS error type, message."""

    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.extra = extra


def not_found(name: str, region: str) -> LambdaApiError:
    return LambdaApiError(
        404,
        "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
    )


def invalid(message: str) -> LambdaApiError:
    return LambdaApiError(400, "InvalidParameterValueException", message)


@dataclass
class InvokeResult:
    status: int
    payload: bytes
    function_error: str | None
    log_tail: str
    report: ReportLine
    cpu_seconds: float


@dataclass
class _Function:
    config: dict[str, Any]
    spec: FunctionSpec
    zip_path: Path
    idle: list[ExecutionEnvironment] = field(default_factory=list)


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
    def __init__(self, options: RuntimeOptions, user: ServerUser, publisher: CloudWatchPublisher | None) -> None:
        self.options = options
        self.user = user
        self.publisher = publisher
        self.functions_dir = options.state_dir / "functions"
        self.envs_dir = options.state_dir / "environments"
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._in_flight = 0
        self._live: set[ExecutionEnvironment] = set()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, daemon=True, name="idle-reaper")
        self.cgroup_mode, self.cgroup_detail = self._cgroup_mode()

    # -- set-up -----------------------------------------------------------------------------------

    def _cgroup_mode(self) -> tuple[str, str]:
        if self.options.cgroups == "off":
            return "", "cgroups = off in configuration: memory is sampled, CPU share not enforced"
        version, reason = CgroupLimiter(f"{self.options.cgroup_prefix}-probe").detect()
        if not version:
            if self.options.cgroups == "require":
                raise RuntimeError(
                    f"cgroups = require, but the Lambda runtime cannot cap environments: {reason}. "
                    "Run as root on a machine with writable cgroups, or set cgroups = auto"
                )
            return "", f"{reason}: memory is sampled, CPU share not enforced (CPU time is reported instead)"
        return version, f"each environment in its own {version} cgroup: memory limit and CPU quota"

    def start(self) -> None:
        # Environments of a previous run are gone with their processes; a killed server leaves their
        # (empty) cgroups and working directories behind.
        if self.cgroup_mode:
            root = CgroupLimiter(f"{self.options.cgroup_prefix}-probe").root
            leftovers = {path.name for path in root.glob(f"*/{self.options.cgroup_prefix}-*")}
            leftovers |= {path.name for path in root.glob(f"{self.options.cgroup_prefix}-*")}
            for name in leftovers:
                CgroupLimiter(name).remove()
        shutil.rmtree(self.envs_dir, ignore_errors=True)
        self.envs_dir.mkdir(parents=True)
        # Functions live as long as the runtime, like the emulator's secrets they read: a function that
        # outlived a restart would fail on its first call. `harness deploy` recreates both.
        shutil.rmtree(self.functions_dir, ignore_errors=True)
        self.functions_dir.mkdir(parents=True)
        # Workers run as the unprivileged account with this interpreter, its standard library, the
        # installed packages the functions import and the harness's worker module.
        needed = [
            self.envs_dir,
            Path(sys.executable).resolve(),
            Path(sysconfig.get_paths()["stdlib"]) / "os.py",
            Path(sysconfig.get_paths()["purelib"]) / "boto3",
            Path(__file__).resolve(),
        ]
        for path in needed:
            for changed in self.user.make_traversable(path):
                print(
                    f"lambda runtime: added the search bit to {changed} so {self.user.name} can reach {path}",
                    file=sys.stderr,
                    flush=True,
                )
        self._reaper.start()

    def shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            live = list(self._live)
            self._live.clear()
            for function in self._functions.values():
                function.idle.clear()
        for env in live:
            env.kill()
        self._reaper.join(timeout=REAP_INTERVAL_S)

    # -- function registry --------------------------------------------------------------------------

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.options.region}:{ACCOUNT_ID}:function:{name}"

    def _function(self, name: str) -> _Function:
        # Clients may address a function by name or by ARN.
        short = name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        function = self._functions.get(short)
        if function is None:
            raise not_found(short, self.options.region)
        return function

    def _materialise(self, config: dict[str, Any], zip_path: Path) -> _Function:
        data = zip_path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        code_dir = zip_path.parent / f"code-{sha[:16]}"
        if not code_dir.exists():
            staging = zip_path.parent / f".unpack-{uuid.uuid4().hex}"
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(staging)
            for path in [staging, *staging.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            staging.rename(code_dir)
        self.user.make_traversable(code_dir)
        for old in zip_path.parent.glob("code-*"):
            if old != code_dir:
                shutil.rmtree(old, ignore_errors=True)
        spec = FunctionSpec(
            name=config["FunctionName"],
            arn=config["FunctionArn"],
            handler=config["Handler"],
            runtime=config["Runtime"],
            memory_mb=int(config["MemorySize"]),
            timeout_s=int(config["Timeout"]),
            code_dir=code_dir,
            code_sha=sha,
            variables=dict(config.get("Environment", {}).get("Variables", {})),
        )
        return _Function(config=config, spec=spec, zip_path=zip_path)

    @staticmethod
    def _check_zip(data: bytes) -> None:
        if len(data) > MAX_ZIP_BYTES:
            raise LambdaApiError(
                413, "RequestEntityTooLargeException", f"Zipped code is {len(data)} bytes; the limit is {MAX_ZIP_BYTES}"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                unzipped = sum(info.file_size for info in archive.infolist())
        except zipfile.BadZipFile:
            raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
        if unzipped > MAX_UNZIPPED_BYTES:
            raise invalid(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes (it is {unzipped})")

    def _validated_settings(self, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        base = current or {"MemorySize": 128, "Timeout": 3, "Description": "", "Environment": {"Variables": {}}}
        merged = {**base, **{k: v for k, v in body.items() if k in base or k in ("Handler", "Runtime", "Role")}}
        memory, timeout = merged.get("MemorySize"), merged.get("Timeout")
        if not isinstance(memory, int) or not 128 <= memory <= 10240:
            raise invalid(f"MemorySize must be an integer between 128 and 10240 MB, got {memory!r}")
        if not isinstance(timeout, int) or not 1 <= timeout <= 900:
            raise invalid(f"Timeout must be an integer between 1 and 900 seconds, got {timeout!r}")
        runtime = merged.get("Runtime", "")
        if not isinstance(runtime, str) or not runtime.startswith("python3."):
            raise invalid(
                f"Runtime {runtime!r} is not supported by the local Lambda runtime: it runs python3.x functions "
                "(with the harness's own interpreter)"
            )
        handler = merged.get("Handler", "")
        if not isinstance(handler, str) or not _HANDLER.match(handler):
            raise invalid(f"Handler must look like 'module.function', got {handler!r}")
        variables = merged.get("Environment", {}).get("Variables", {})
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise invalid("Environment.Variables must map names to strings")
        reserved = sorted(set(variables) & _RESERVED_VARIABLES)
        if reserved:
            raise invalid(
                f"Lambda was unable to configure your environment variables because the environment "
                f"variables you have provided contains reserved keys: {', '.join(reserved)}"
            )
        merged["Environment"] = {"Variables": variables}
        return merged

    def _save(self, config: dict[str, Any], zip_bytes: bytes | None) -> _Function:
        directory = self.functions_dir / config["FunctionName"]
        directory.mkdir(parents=True, exist_ok=True)
        zip_path = directory / "code.zip"
        if zip_bytes is not None:
            zip_path.write_bytes(zip_bytes)
            config["CodeSize"] = len(zip_bytes)
            config["CodeSha256"] = base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()
        config["LastModified"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        config["RevisionId"] = str(uuid.uuid4())
        return self._materialise(config, zip_path)

    def _replace(self, name: str, function: _Function) -> None:
        """Install a new version: idle environments of the old one go (busy ones go when they finish)."""
        with self._lock:
            old = self._functions.get(name)
            self._functions[name] = function
            stale = old.idle if old else []
            for env in stale:
                self._live.discard(env)
        for env in stale:
            env.kill()

    @staticmethod
    def _zip_from(body: dict[str, Any]) -> bytes:
        code = body.get("Code", body)
        encoded = code.get("ZipFile") if isinstance(code, dict) else None
        if not encoded:
            raise invalid(
                "the local Lambda runtime takes code as ZipFile only (not S3Bucket/S3Key or ImageUri): "
                "pass the zip's bytes"
            )
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:
            raise invalid("ZipFile is not valid base64") from None

    def create_function(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("FunctionName", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid(f"FunctionName must be 1-64 letters, digits, '-' or '_', got {name!r}")
        if not body.get("Role"):
            raise invalid("Role is required (any IAM role ARN is accepted locally)")
        zip_bytes = self._zip_from(body)
        self._check_zip(zip_bytes)
        with self._lock:
            if name in self._functions:
                raise LambdaApiError(409, "ResourceConflictException", f"Function already exist: {name}")
        config = self._validated_settings(body, None)
        config.update(
            {
                "FunctionName": name,
                "FunctionArn": self._arn(name),
                "Version": "$LATEST",
                "State": "Active",
                "LastUpdateStatus": "Successful",
                "PackageType": "Zip",
                "Architectures": ["x86_64"],
                "EphemeralStorage": {"Size": 512},
                "TracingConfig": {"Mode": "PassThrough"},
                "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
            }
        )
        self._replace(name, self._save(config, zip_bytes))
        return self.get_configuration(name)

    def update_code(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._function(name)
        zip_bytes = self._zip_from(body)
        self._check_zip(zip_bytes)
        self._replace(current.spec.name, self._save(dict(current.config), zip_bytes))
        return self.get_configuration(name)

    def update_configuration(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._function(name)
        config = self._validated_settings(body, dict(current.config))
        self._replace(current.spec.name, self._save(config, None))
        return self.get_configuration(name)

    def get_configuration(self, name: str) -> dict[str, Any]:
        return dict(self._function(name).config)

    def get_function(self, name: str, code_url: str) -> dict[str, Any]:
        return {
            "Configuration": self.get_configuration(name),
            "Code": {"RepositoryType": "S3", "Location": code_url},
        }

    def code_zip(self, name: str) -> bytes:
        return self._function(name).zip_path.read_bytes()

    def list_functions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f.config) for _, f in sorted(self._functions.items())]

    def delete_function(self, name: str) -> None:
        function = self._function(name)
        with self._lock:
            self._functions.pop(function.spec.name, None)
            idle = function.idle
            for env in idle:
                self._live.discard(env)
        for env in idle:
            env.kill()
        shutil.rmtree(function.zip_path.parent, ignore_errors=True)

    def account_settings(self) -> dict[str, Any]:
        with self._lock:
            functions = list(self._functions.values())
        return {
            "AccountLimit": {
                "ConcurrentExecutions": self.options.concurrency_limit,
                "UnreservedConcurrentExecutions": self.options.concurrency_limit,
                "CodeSizeZipped": MAX_ZIP_BYTES,
                "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            },
            "AccountUsage": {
                "FunctionCount": len(functions),
                "TotalCodeSize": sum(int(f.config.get("CodeSize", 0)) for f in functions),
            },
        }

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
            function = self._function(name)
            if self._in_flight >= self.options.concurrency_limit:
                throttled = True
            else:
                throttled = False
                self._in_flight += 1
                concurrent = self._in_flight
                spec = function.spec
                env = function.idle.pop() if function.idle else None
        if throttled:
            self._metric(function.spec.name, "Throttles", 1, "Count")
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
            cgroup = CgroupLimiter(f"{self.options.cgroup_prefix}-{env_id[:12]}") if self.cgroup_mode else None
            env = ExecutionEnvironment(
                spec,
                env_id=env_id,
                work_dir=self.envs_dir / env_id,
                base_env=self.options.base_env,
                user=self.user,
                cgroup=cgroup,
            )
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

    def _return(self, spec: FunctionSpec, env: ExecutionEnvironment) -> None:
        with self._lock:
            function = self._functions.get(spec.name)
            keep = env.alive and function is not None and function.spec == spec and not self._stop.is_set()
            if keep and function is not None:
                function.idle.append(env)
            else:
                self._live.discard(env)
        if not keep:
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
        if not self.cgroup_mode:
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
            for function in self._functions.values():
                keep = [e for e in function.idle if now - e.last_used < self.options.idle_timeout_s]
                expired.extend(e for e in function.idle if e not in keep)
                function.idle = keep
            for env in expired:
                self._live.discard(env)
        for env in expired:
            env.kill()
        return len(expired)

    def facts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "concurrency_limit": self.options.concurrency_limit,
                "in_flight": self._in_flight,
                "functions": {
                    name: {"memory_mb": f.spec.memory_mb, "timeout_s": f.spec.timeout_s, "warm": len(f.idle)}
                    for name, f in sorted(self._functions.items())
                },
                "environments": len(self._live),
                "cgroups": {
                    "enforced": bool(self.cgroup_mode),
                    "version": self.cgroup_mode,
                    "detail": self.cgroup_detail,
                },
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
