"""The functions the local Lambda service knows: create, update, validate, unpack their zips, and their
configuration as the Lambda API returns it.

Kept apart from invocation (runtime.py) because this half is the API's bookkeeping, checked against
Lambda's limits without running anything; the runtime asks it for the current version of a function
and is told, through `on_retired`, when a version is replaced or deleted so it can drop that version's
idle environments. The API's error shape (LambdaApiError) lives here too: both halves raise it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.lambda_runtime.environment import FunctionSpec
from harness.services.osuser import ServerUser

ACCOUNT_ID = "000000000000"
# Beside each function's code.zip: what the API returns for it, so a restarted runtime still has it.
CONFIG_FILE = "config.json"
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
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


@dataclass(frozen=True)
class _Function:
    config: dict[str, Any]
    spec: FunctionSpec
    zip_path: Path


class FunctionRegistry:
    """Functions by name, each with its configuration, its zip and the unpacked code its environments run."""

    def __init__(
        self,
        functions_dir: Path,
        region: str,
        user: ServerUser,
        on_retired: Callable[[str], None] | None = None,
    ) -> None:
        self.functions_dir = functions_dir
        self.region = region
        self.user = user
        # Called with a function's name, outside the registry's lock, after a version was replaced or deleted.
        self.on_retired = on_retired
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}

    def load(self) -> list[str]:
        """Reload the functions saved in the state directory, as Lambda keeps them across any outage.

        Each function's directory holds its zip and its configuration (config.json, written after the zip,
        atomically); a directory without a readable configuration is what a crash during a create leaves,
        and is dropped with a line on stderr. Returns the names loaded.
        """
        self.functions_dir.mkdir(parents=True, exist_ok=True)
        loaded: dict[str, _Function] = {}
        for directory in sorted(p for p in self.functions_dir.iterdir() if p.is_dir()):
            try:
                config = json.loads((directory / CONFIG_FILE).read_text())
                loaded[config["FunctionName"]] = self._materialise(config, directory / "code.zip")
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                print(
                    f"lambda runtime: dropping {directory.name}, its saved state is unreadable ({exc})", file=sys.stderr
                )
                shutil.rmtree(directory, ignore_errors=True)
        with self._lock:
            self._functions = loaded
        return sorted(loaded)

    # -- what the runtime asks --------------------------------------------------------------------

    def spec(self, name: str) -> FunctionSpec:
        """The current version of a function addressed by name or ARN; ResourceNotFoundException if none."""
        with self._lock:
            return self._function(name).spec

    def current(self, name: str) -> FunctionSpec | None:
        """The current version of the function called `name`, None when it was deleted."""
        with self._lock:
            function = self._functions.get(name)
            return function.spec if function else None

    def specs(self) -> dict[str, FunctionSpec]:
        with self._lock:
            return {name: f.spec for name, f in sorted(self._functions.items())}

    def usage(self) -> dict[str, int]:
        """The account's usage as GetAccountSettings reports it."""
        with self._lock:
            functions = list(self._functions.values())
        return {
            "FunctionCount": len(functions),
            "TotalCodeSize": sum(int(f.config.get("CodeSize", 0)) for f in functions),
        }

    # -- the API ----------------------------------------------------------------------------------

    def create_function(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("FunctionName", "")
        if not isinstance(name, str) or not _NAME.match(name):
            raise invalid(f"FunctionName must be 1-64 letters, digits, '-' or '_', got {name!r}")
        if not body.get("Role"):
            raise invalid("Role is required (any IAM role ARN is accepted locally)")
        zip_bytes = _zip_from(body)
        _check_zip(zip_bytes)
        with self._lock:
            if name in self._functions:
                raise LambdaApiError(409, "ResourceConflictException", f"Function already exist: {name}")
        config = _validated_settings(body, None)
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
        self._install(name, self._save(config, zip_bytes))
        return self.get_configuration(name)

    def update_code(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._locked_function(name)
        zip_bytes = _zip_from(body)
        _check_zip(zip_bytes)
        self._install(current.spec.name, self._save(dict(current.config), zip_bytes))
        return self.get_configuration(name)

    def update_configuration(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self._locked_function(name)
        config = _validated_settings(body, dict(current.config))
        self._install(current.spec.name, self._save(config, None))
        return self.get_configuration(name)

    def get_configuration(self, name: str) -> dict[str, Any]:
        return dict(self._locked_function(name).config)

    def get_function(self, name: str, code_url: str) -> dict[str, Any]:
        return {
            "Configuration": self.get_configuration(name),
            "Code": {"RepositoryType": "S3", "Location": code_url},
        }

    def code_zip(self, name: str) -> bytes:
        return self._locked_function(name).zip_path.read_bytes()

    def list_functions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f.config) for _, f in sorted(self._functions.items())]

    def delete_function(self, name: str) -> None:
        with self._lock:
            function = self._function(name)
            self._functions.pop(function.spec.name, None)
            # The configuration goes first: a crash mid-delete must not resurrect the function.
            (function.zip_path.parent / CONFIG_FILE).unlink(missing_ok=True)
        self._retired(function.spec.name)
        shutil.rmtree(function.zip_path.parent, ignore_errors=True)

    # -- plumbing ---------------------------------------------------------------------------------

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"

    def _function(self, name: str) -> _Function:
        # Clients may address a function by name or by ARN. The caller holds the lock.
        short = name.rsplit(":function:", 1)[-1].split(":", 1)[0]
        function = self._functions.get(short)
        if function is None:
            raise not_found(short, self.region)
        return function

    def _locked_function(self, name: str) -> _Function:
        with self._lock:
            return self._function(name)

    def _install(self, name: str, function: _Function) -> None:
        """Install a new version; the runtime drops the old one's idle environments (busy ones go when they finish)."""
        with self._lock:
            replaced = name in self._functions
            self._functions[name] = function
        if replaced:
            self._retired(name)

    def _retired(self, name: str) -> None:
        if self.on_retired is not None:
            self.on_retired(name)

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
        function = self._materialise(config, zip_path)
        staging = directory / f".{CONFIG_FILE}.tmp"
        staging.write_text(json.dumps(config))
        staging.replace(directory / CONFIG_FILE)
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


def _zip_from(body: dict[str, Any]) -> bytes:
    code = body.get("Code", body)
    encoded = code.get("ZipFile") if isinstance(code, dict) else None
    if not encoded:
        raise invalid(
            "the local Lambda runtime takes code as ZipFile only (not S3Bucket/S3Key or ImageUri): pass the zip's bytes"
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise invalid("ZipFile is not valid base64") from None


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


def _validated_settings(body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
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
