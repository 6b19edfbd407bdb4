"""The GDPR functions' zips and their deployment: what the zip holds and that it loads, that packaging is
deterministic, and what `deploy` really configures, through the harness's own Lambda API served in-process
on 127.0.0.1 (no stack: nothing is invoked)."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from harness.app.gdpr_deploy import CA_BUNDLE_NAME, HANDLER, DeployError, code_sha256, definitions, deploy, package
from harness.app.gdpr_invoke import Invocation, InvocationSeries, monthly_gb_seconds
from harness.lambda_runtime.report_line import ReportLine
from harness.lambda_runtime.runtime import LambdaRuntime, RuntimeOptions
from harness.lambda_runtime.server import LambdaHttpServer
from harness.paths import FIXTURES_DIR
from harness.services.osuser import ServerUser
from harness.thresholds import load_thresholds

# The seed document's compute tier ("Environment Configuration"), as the document states it.
SEED_DOCUMENT_MEMORY_MB = {"data_export": 512, "data_deletion": 256, "audit_logging": 128}
# Lambda's maximum timeout.
LAMBDA_MAX_TIMEOUT_S = 900
REGION = "us-east-2"
SETTINGS = {"db_secret_id": "db-secret", "redis_secret_id": "redis-secret", "exports_bucket": "exports"}
# The handler module imports boto3, psycopg and redis and builds its AWS clients at import; nothing connects.
LOAD_HANDLER = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
module, function = sys.argv[2].rsplit(".", 1)
handler = getattr(importlib.import_module(module), function)
assert callable(handler), handler
print(importlib.import_module(module).__file__)
"""


@pytest.fixture
def lambda_api(tmp_path) -> Iterator[Any]:
    """A boto3 Lambda client against the harness's Lambda API on an ephemeral 127.0.0.1 port."""
    options = RuntimeOptions(tmp_path / "lambda", REGION, 10, "off", "unit-test", {})
    runtime = LambdaRuntime(options, ServerUser("me", os.geteuid(), os.getegid()), None)
    runtime.start()
    server = LambdaHttpServer(("127.0.0.1", 0), runtime)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    try:
        yield boto3.client(
            "lambda",
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)
        runtime.shutdown()


def test_deployed_functions_have_the_seed_documents_memory_and_a_timeout_past_the_duration_critical(lambda_api):
    results = deploy(lambda_api, **SETTINGS)
    assert {r.action for r in results} == {"created"}
    deployed = {f: lambda_api.get_function_configuration(FunctionName=f) for f in SEED_DOCUMENT_MEMORY_MB}
    assert {f: c["MemorySize"] for f, c in deployed.items()} == SEED_DOCUMENT_MEMORY_MB
    # A run slower than the critical level is measured as slow, not cut off as a timeout error; the audit batch
    # is bounded (500 entries) and is meant to fail fast instead.
    thresholds = load_thresholds(FIXTURES_DIR / "thresholds.yaml").by_id()
    for function, config in deployed.items():
        critical_ms = thresholds[f"lambda.{function}.duration_ms"].level("critical")
        assert critical_ms is not None
        if function != "audit_logging":
            assert config["Timeout"] * 1000 > critical_ms, (function, config["Timeout"], critical_ms)
        assert config["Timeout"] <= LAMBDA_MAX_TIMEOUT_S
        assert config["Handler"] == HANDLER


def test_each_deployed_function_holds_only_the_settings_it_uses(lambda_api):
    deploy(lambda_api, **SETTINGS)
    variables = {
        f: lambda_api.get_function_configuration(FunctionName=f)["Environment"]["Variables"]
        for f in SEED_DOCUMENT_MEMORY_MB
    }
    assert variables["audit_logging"] == {"DB_SECRET_ID": "db-secret", "DB_SCHEMA": "app", "DB_SSLMODE": "verify-full"}
    assert variables["data_deletion"]["REDIS_SECRET_ID"] == "redis-secret"
    assert "REDIS_SECRET_ID" not in variables["data_export"]
    assert variables["data_export"]["EXPORTS_BUCKET"] == "exports"


def test_redeploying_the_same_source_uploads_nothing_and_lambda_reports_our_code_sha(lambda_api):
    deploy(lambda_api, **SETTINGS, names=["audit_logging"])
    again = deploy(lambda_api, **SETTINGS, names=["audit_logging"])
    assert [r.action for r in again] == ["unchanged"]
    reported = lambda_api.get_function_configuration(FunctionName="audit_logging")["CodeSha256"]
    assert reported == again[0].code_sha256 == code_sha256(package(definitions(["audit_logging"])[0]))
    changed = deploy(lambda_api, **{**SETTINGS, "db_secret_id": "other"}, names=["audit_logging"])
    assert [r.action for r in changed] == ["updated"]


def test_a_ca_bundle_travels_in_every_zip_and_the_functions_are_told_its_name(lambda_api):
    bundle = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    deploy(lambda_api, **SETTINGS, ca_bundle=bundle)
    for definition in definitions():
        with zipfile.ZipFile(io.BytesIO(package(definition, bundle))) as archive:
            assert archive.read(CA_BUNDLE_NAME) == bundle
        variables = lambda_api.get_function_configuration(FunctionName=definition.name)["Environment"]["Variables"]
        assert variables["CA_BUNDLE"] == CA_BUNDLE_NAME
        assert variables["DB_SSLMODE"] == "verify-full"


def test_unknown_function_is_named():
    with pytest.raises(DeployError, match=r"unknown function.*nope; known: data_export"):
        definitions(["nope"])


@pytest.mark.parametrize("definition", definitions(), ids=lambda d: d.name)
def test_the_zip_loads_its_handler_from_the_zip_alone(definition, tmp_path):
    data = package(definition)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    path = tmp_path / f"{definition.name}.zip"
    path.write_bytes(data)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        # Never reached: building clients does not connect.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    # -I: the repository's functions/ folder is not on the path, so app and gdpr_common can only come from the zip.
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_HANDLER, str(path), HANDLER],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().startswith(str(path)), loaded.stdout


def test_packaging_ignores_file_times_and_bytecode(tmp_path):
    definition = definitions(["audit_logging"])[0]
    copy = tmp_path / definition.name
    shutil.copytree(definition.source_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
    later = time.time() + 86_400
    for path in copy.rglob("*"):
        os.utime(path, (later, later))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"stale bytecode")
    assert package(dataclasses.replace(definition, source_dir=copy)) == package(definition)


def _invocation(duration, billed, memory, init=None, error=None, throttled=False):
    report = None if throttled else ReportLine("r", duration, billed, memory, 50, init)
    return Invocation("f", throttled, error, None, report, duration)


def test_series_summary_counts_cold_starts_errors_throttles_and_gb_seconds():
    series = InvocationSeries(
        "f",
        [
            _invocation(1000.0, 1300, 1024, init=299.5),
            _invocation(500.0, 500, 1024),
            _invocation(2000.0, 2000, 1024, error="Unhandled"),
            _invocation(0.0, 0, 1024, throttled=True),
        ],
    )
    summary = series.summary()
    assert summary["invocations"] == 4
    assert (summary["errors"], summary["throttles"], summary["cold_starts"]) == (1, 1, 1)
    assert summary["duration_ms"]["max"] == 2000.0
    assert summary["gb_seconds"] == pytest.approx(3.8)
    assert monthly_gb_seconds(series, 1_000_000) == pytest.approx(3.8 / 3 * 1_000_000)


def test_deploy_package_only_writes_one_zip_per_function(tmp_path):
    import argparse

    from harness.cli.deploy import add_deploy_command

    parser = argparse.ArgumentParser()
    add_deploy_command(parser.add_subparsers())
    args = parser.parse_args(["deploy", "--package-only", str(tmp_path / "dist"), "--function", "audit_logging"])
    assert args.func(args) == 0
    written = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert written == ["audit_logging.zip"]
    assert (tmp_path / "dist" / "audit_logging.zip").read_bytes() == package(definitions(["audit_logging"])[0])
