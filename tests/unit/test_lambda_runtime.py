"""The local Lambda service's function registry (API validation), invoke checks and worker protocol, without
sockets or worker processes."""

import base64
import io
import os
import time
import zipfile

import pytest

from harness.lambda_runtime.protocol import ChannelClosed, FrameTimeout, read_frame, write_frame
from harness.lambda_runtime.registry import FunctionRegistry, LambdaApiError
from harness.lambda_runtime.runtime import LambdaRuntime, RuntimeOptions
from harness.services.osuser import ServerUser

# The current user: nothing is chowned and no account is created.
ME = ServerUser("me", os.geteuid(), os.getegid())


def runtime(tmp_path) -> LambdaRuntime:
    return LambdaRuntime(RuntimeOptions(tmp_path, "us-east-2", 10, "off", "test", {}), ME, None)


def registry(tmp_path) -> FunctionRegistry:
    return FunctionRegistry(tmp_path / "functions", "us-east-2", ME)


def zipped(code: str = "def handler(event, context):\n    return event\n") -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", code)
    return base64.b64encode(buffer.getvalue()).decode()


def create_body(**overrides):
    return {
        "FunctionName": "f",
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "app.handler",
        "Code": {"ZipFile": zipped()},
        **overrides,
    }


def test_create_returns_lambdas_configuration_shape(tmp_path):
    config = registry(tmp_path).create_function(create_body(MemorySize=256, Timeout=30))
    assert config["FunctionArn"] == "arn:aws:lambda:us-east-2:000000000000:function:f"
    assert (config["MemorySize"], config["Timeout"], config["State"], config["LastUpdateStatus"]) == (
        256,
        30,
        "Active",
        "Successful",
    )
    assert config["CodeSha256"] and config["CodeSize"] > 0


@pytest.mark.parametrize(
    ("overrides", "status", "error_type", "message"),
    [
        ({"MemorySize": 64}, 400, "InvalidParameterValueException", "MemorySize must be an integer between 128"),
        ({"Timeout": 901}, 400, "InvalidParameterValueException", "Timeout must be an integer between 1 and 900"),
        ({"Runtime": "nodejs20.x"}, 400, "InvalidParameterValueException", "runs python3.x functions"),
        ({"Handler": "app"}, 400, "InvalidParameterValueException", "module.function"),
        ({"Code": {"S3Bucket": "b", "S3Key": "k"}}, 400, "InvalidParameterValueException", "ZipFile only"),
        (
            {"Code": {"ZipFile": base64.b64encode(b"not a zip").decode()}},
            400,
            "InvalidParameterValueException",
            "Could not unzip",
        ),
        ({"FunctionName": "bad name"}, 400, "InvalidParameterValueException", "FunctionName must be"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, 400, "InvalidParameterValueException", "reserved keys"),
    ],
)
def test_create_rejects_what_lambda_rejects(tmp_path, overrides, status, error_type, message):
    with pytest.raises(LambdaApiError, match=message) as caught:
        registry(tmp_path).create_function(create_body(**overrides))
    assert (caught.value.status, caught.value.error_type) == (status, error_type)


def test_duplicate_and_missing_functions(tmp_path):
    rt = registry(tmp_path)
    rt.create_function(create_body())
    with pytest.raises(LambdaApiError, match="Function already exist: f"):
        rt.create_function(create_body())
    with pytest.raises(LambdaApiError, match="Function not found: arn:aws:lambda:us-east-2:000000000000:function:g"):
        rt.get_configuration("g")
    # Addressed by ARN as well as by name.
    assert rt.get_configuration("arn:aws:lambda:us-east-2:000000000000:function:f")["FunctionName"] == "f"


def test_update_configuration_keeps_what_it_does_not_name(tmp_path):
    rt = registry(tmp_path)
    rt.create_function(create_body(MemorySize=512, Timeout=60))
    config = rt.update_configuration("f", {"Timeout": 90})
    assert (config["MemorySize"], config["Timeout"]) == (512, 90)


def test_a_restarted_runtime_keeps_its_functions_and_their_configuration(tmp_path):
    before = runtime(tmp_path).registry
    before.create_function(create_body(MemorySize=1024))
    before.update_configuration("f", {"Timeout": 42})
    saved = before.get_configuration("f")
    restarted = runtime(tmp_path)
    restarted.start()
    try:
        assert restarted.registry.get_configuration("f") == saved
        assert restarted.registry.spec("f").memory_mb == 1024
        assert restarted.registry.code_zip("f") == before.code_zip("f")
    finally:
        restarted.shutdown()


def test_a_deleted_function_stays_deleted_and_a_half_created_one_is_dropped_on_restart(tmp_path):
    before = runtime(tmp_path).registry
    before.create_function(create_body())
    before.create_function(create_body(FunctionName="g"))
    before.delete_function("g")
    # What a crash between writing the zip and the configuration leaves behind.
    (tmp_path / "functions" / "h").mkdir()
    (tmp_path / "functions" / "h" / "code.zip").write_bytes(base64.b64decode(zipped()))
    restarted = runtime(tmp_path)
    restarted.start()
    try:
        assert [c["FunctionName"] for c in restarted.registry.list_functions()] == ["f"]
        assert not (tmp_path / "functions" / "h").exists()
    finally:
        restarted.shutdown()


@pytest.mark.parametrize(
    ("payload", "status", "error_type"),
    [
        (b"{not json", 400, "InvalidRequestContentException"),
        (b" " * (6 * 1024 * 1024 + 1), 413, "RequestTooLargeException"),
    ],
)
def test_invoke_rejects_bad_payloads_before_running_anything(tmp_path, payload, status, error_type):
    rt = runtime(tmp_path)
    rt.registry.create_function(create_body())
    with pytest.raises(LambdaApiError) as caught:
        rt.invoke("f", payload)
    assert (caught.value.status, caught.value.error_type) == (status, error_type)


def test_frames_round_trip_and_report_a_closed_or_silent_peer():
    read_fd, write_fd = os.pipe()
    try:
        # Small enough for the pipe's buffer: nothing reads while this writes.
        message = {"request_id": "r", "payload": "x" * 10_000}
        write_frame(write_fd, message)
        assert read_frame(read_fd) == message
        with pytest.raises(FrameTimeout):
            read_frame(read_fd, time.monotonic() + 0.05)
    finally:
        os.close(write_fd)
    with pytest.raises(ChannelClosed):
        read_frame(read_fd)
    os.close(read_fd)


def test_the_registry_tells_the_runtime_when_a_version_is_replaced_or_deleted(tmp_path):
    retired: list[str] = []
    functions = FunctionRegistry(tmp_path / "functions", "us-east-2", ME, retired.append)
    functions.create_function(create_body())
    assert retired == []
    first = functions.spec("f")
    functions.update_code("f", {"ZipFile": zipped("def handler(event, context):\n    return 1\n")})
    assert retired == ["f"]
    assert functions.spec("f").code_sha != first.code_sha
    functions.delete_function("f")
    assert retired == ["f", "f"]
    assert functions.current("f") is None
    assert not (tmp_path / "functions" / "f").exists()
