"""The `thresholds` and `report` subcommands as harness/cli/main.py will wire them: exit codes and output."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.cli.reports import DEFAULT_THRESHOLDS_FILE, add_report_commands, add_threshold_commands
from harness.measure.results import ResultsWriter
from harness.thresholds import ExitCode

if TYPE_CHECKING:
    from conftest import ThresholdText


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="harness")
    sub = parser.add_subparsers(dest="command", required=True)
    add_threshold_commands(sub)
    add_report_commands(sub)
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_thresholds_check_accepts_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("thresholds", "check", str(DEFAULT_THRESHOLDS_FILE)) == ExitCode.PASS
    out = capsys.readouterr().out
    assert "vector_search.latency_ms" in out and "warn unless p95 < 50ms; fail unless p95 < 100ms  (ours)" in out
    assert "38 thresholds valid" in out


def test_thresholds_check_reports_problems_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold_text: ThresholdText
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(threshold_text.file(threshold_text.cpu.replace("rds.cpu_pct", "rds.cpu")))
    assert run("thresholds", "check", str(bad)) == ExitCode.BROKEN
    err = capsys.readouterr().err
    assert f"{bad}:3:13: unknown metric 'rds.cpu'" in err


def test_thresholds_check_applies_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override = tmp_path / "o.yaml"
    override.write_text("schema_version: 1\noverrides:\n  rds.cpu_pct:\n    warning: mean < 95%\n")
    assert run("thresholds", "check", str(DEFAULT_THRESHOLDS_FILE), "--override", str(override)) == ExitCode.BROKEN
    assert "wrong side of critical" in capsys.readouterr().err
    args = ("thresholds", "check", str(DEFAULT_THRESHOLDS_FILE), "--set", "rds.cpu_pct:warning=mean < 50%")
    assert run(*args) == ExitCode.PASS
    assert "warn unless mean < 50%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("cpu", "unmeasured_threshold", "expected"),
    [
        (10.0, False, ExitCode.PASS),
        (75.0, False, ExitCode.WARN),
        (95.0, False, ExitCode.FAIL),
        (10.0, True, ExitCode.BROKEN),
    ],
)
def test_report_render_exits_with_the_verdict(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    threshold_text: ThresholdText,
    cpu: float,
    unmeasured_threshold: bool,
    expected: int,
) -> None:
    results = tmp_path / "results.json"
    for t in range(3):
        ResultsWriter.open(results).record_value("rds.cpu_pct", cpu, t=float(t))
    thresholds = tmp_path / "t.yaml"
    entries = [threshold_text.cpu, *([threshold_text.evictions] if unmeasured_threshold else [])]
    thresholds.write_text(threshold_text.file(*entries))
    code = run("report", "render", str(results), "--out", str(tmp_path / "report"), "--thresholds", str(thresholds))
    assert code == expected
    out = capsys.readouterr().out
    assert f"(exit {expected}:" in out
    assert (tmp_path / "report" / "report.html").is_file()


def test_report_render_refuses_broken_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold_text: ThresholdText
) -> None:
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text(threshold_text.file(threshold_text.cpu))
    out = str(tmp_path / "report")
    assert run("report", "render", str(tmp_path / "absent.json"), "--out", out, "--thresholds", str(thresholds)) == (
        ExitCode.BROKEN
    )
    assert "cannot read results" in capsys.readouterr().err
    missing = str(tmp_path / "nope.yaml")
    assert (
        run("report", "render", str(tmp_path / "absent.json"), "--out", out, "--thresholds", missing) == ExitCode.BROKEN
    )
    assert "pass --thresholds FILE" in capsys.readouterr().err


def test_report_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    ResultsWriter.open(a).record_latency("vector_search.latency_ms", [10.0] * 50)
    ResultsWriter.open(b).record_latency("vector_search.latency_ms", [20.0] * 50)
    assert run("report", "compare", str(a), str(b)) == ExitCode.PASS
    out = capsys.readouterr().out
    assert "vector_search.latency_ms  p95" in out and "+100.0%" in out and "worse" in out
    assert run("report", "compare", str(a), str(tmp_path / "absent.json")) == ExitCode.BROKEN
