import io
import zipfile

import pytest

from harness.app.gdpr import (
    TIMEOUTS_S,
    DeployError,
    Invocation,
    InvocationSeries,
    code_sha256,
    definitions,
    monthly_gb_seconds,
    package,
)
from harness.lambda_runtime.report_line import ReportLine


def test_definitions_follow_the_seed_document():
    sizes = {d.name: (d.memory_mb, d.timeout_s) for d in definitions()}
    assert sizes == {"data_export": (512, 300), "data_deletion": (256, 300), "audit_logging": (128, 30)}
    # Timeouts leave the duration thresholds (critical 250 s) measurable, within Lambda's 900 s maximum.
    assert all(t <= 900 for t in TIMEOUTS_S.values())
    assert TIMEOUTS_S["data_export"] > 250 and TIMEOUTS_S["data_deletion"] > 250


def test_unknown_function_is_named():
    with pytest.raises(DeployError, match=r"unknown function.*nope; known: data_export"):
        definitions(["nope"])


@pytest.mark.parametrize("definition", definitions(), ids=lambda d: d.name)
def test_zip_holds_the_handler_and_the_shared_package(definition):
    data = package(definition)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "app.py" in names
    assert {"gdpr_common/__init__.py", "gdpr_common/resources.py", "gdpr_common/validation.py"} <= set(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # Same source, same bytes: an unchanged function is not uploaded again.
    assert code_sha256(package(definition)) == code_sha256(data)


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
    assert "gdpr_common/validation.py" in zipfile.ZipFile(tmp_path / "dist" / "audit_logging.zip").namelist()
