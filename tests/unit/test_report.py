"""The report files rendered from the recorded sample run (tests/data/sample-results.json)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.measure.results import ResultsError, ResultsWriter
from harness.report import (
    ReportOutcome,
    compare_judged,
    compare_paths,
    format_verdict_table,
    load_judged,
    render_report,
)
from harness.report.text import VERDICT_HEADERS
from harness.thresholds import ExitCode, Status, load_thresholds

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sample-results.json"
DEFAULTS = ROOT / "fixtures" / "thresholds.yaml"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> ReportOutcome:
    return render_report(SAMPLE, tmp_path_factory.mktemp("report"), load_thresholds(DEFAULTS))


def test_every_file_is_written(outcome: ReportOutcome) -> None:
    for name in ("report.json", "report.md", "report.html", "junit.xml", "results"):
        assert outcome.files[name].stat().st_size > 0, name
    assert outcome.files["results"].read_bytes() == SAMPLE.read_bytes()


def test_the_sample_shows_every_status(outcome: ReportOutcome) -> None:
    statuses = {r.threshold.id: r.status for r in outcome.evaluation}
    assert statuses["lambda.data_deletion.error_rate_pct"] is Status.FAIL
    assert statuses["free_tier.cloudwatch_logs_bytes"] is Status.ERROR
    assert statuses["rds.connections_pct"] is Status.WARN
    assert statuses["vector_search.latency_ms"] is Status.PASS
    assert outcome.exit_code == ExitCode.BROKEN


def test_report_json(outcome: ReportOutcome) -> None:
    document = json.loads(outcome.files["report.json"].read_text())
    assert (document["verdict"], document["exit_code"]) == ("ERROR", ExitCode.BROKEN)
    assert document["run"]["sizing"]["db_instance_class"] == "db.t3.micro"
    by_id = {t["id"]: t for t in document["thresholds"]}
    fail = by_id["lambda.data_deletion.error_rate_pct"]
    assert (fail["status"], fail["level"], fail["level_name"], fail["sample_size"]) == ("FAIL", 10.0, "critical", 500)
    assert fail["margin"] < 0
    assert document["figures"]["vector_search.latency_ms"]["values"]["count"] == 3000


def test_junit(outcome: ReportOutcome) -> None:
    suite = ET.parse(outcome.files["junit.xml"]).getroot().find("testsuite")
    assert suite is not None
    # Errors: the logs projection, the two CloudWatch footprint counts and the six drill figures this
    # fixture run never measured.
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("38", "1", "13")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["lambda.data_deletion.error_rate_pct"].find("failure") is not None
    assert cases["free_tier.cloudwatch_logs_bytes"].find("error") is not None
    warned = cases["rds.connections_pct"]
    assert warned.find("failure") is None and warned.find("error") is None
    assert (warned.findtext("system-out") or "").startswith("WARN: ")
    properties = {p.get("name"): p.get("value") for p in warned.iter("property")}
    assert properties["status"] == "WARN" and properties["level"] == "70"


def test_html_is_self_contained_and_complete(outcome: ReportOutcome) -> None:
    html = outcome.files["report.html"].read_text()
    assert "<script" not in html.lower()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references and all(r.startswith("data:image/svg+xml;base64,") for r in references)
    assert "http://" not in html and "https://" not in html and "url(" not in html
    assert html.count("<figure") >= 8  # CDFs, timelines, the recall curve, the Lambda charts
    for chart_id in ("lambda.duration_ms", "vector_search.recall_curve", "cache.hit_rate_pct", "rds.connections_pct"):
        assert f'id="chart-{chart_id}"' in html
    for result in outcome.evaluation:
        assert result.threshold.id in html
    for fact in ("db.t3.micro", "cgroups.in_force", "machine.cores", "git_revision", "data_profile"):
        assert fact in html


def test_markdown(outcome: ReportOutcome) -> None:
    text = outcome.files["report.md"].read_text()
    assert "**Verdict: ERROR** (exit 5:" in text
    assert "| FAIL | lambda.data_deletion.error_rate_pct |" in text


def test_verdict_table_is_fixed_width(outcome: ReportOutcome) -> None:
    lines = format_verdict_table(outcome.evaluation).splitlines()
    header, rule = lines[0], lines[1]
    gaps = [m.start() for m in re.finditer(r"(?<=-)  (?=-)", rule)]
    assert len(gaps) == len(VERDICT_HEADERS) - 1
    rows = lines[2 : 2 + len(outcome.evaluation)]
    for line in [header, *rows]:
        for gap in gaps:
            assert line[gap : gap + 2] in ("  ", " ", ""), line
    assert (
        lines[-1]
        == "verdict: ERROR (exit 5: the run broke: a threshold could not be judged, or input could not be read)"
    )


def test_compare_two_runs(tmp_path: Path) -> None:
    slower = tmp_path / "slower.json"
    shutil.copyfile(SAMPLE, slower)
    ResultsWriter.open(slower).record_latency("vector_search.latency_ms", [90.0] * 600)
    text = compare_paths(SAMPLE, slower)
    (p95,) = [line for line in text.splitlines() if re.match(r"vector_search\.latency_ms +p95 ", line)]
    assert p95.endswith("worse")
    (count,) = [line for line in text.splitlines() if re.match(r"vector_search\.latency_ms +count ", line)]
    assert "+600" in count and not count.endswith(("worse", "better"))
    same = compare_paths(SAMPLE, SAMPLE)
    assert "0 figure(s) worse in B than in A" in same


def test_judged_comparison_puts_each_thresholds_figure_n_and_status_side_by_side(
    outcome: ReportOutcome, tmp_path: Path
) -> None:
    slower = tmp_path / "slower.json"
    shutil.copyfile(SAMPLE, slower)
    ResultsWriter.open(slower).record_latency("vector_search.latency_ms", [900.0] * 600)
    other = render_report(slower, tmp_path / "report", load_thresholds(DEFAULTS))
    a, b = load_judged(outcome.files["report.json"].parent), load_judged(other.files["report.json"])
    text = compare_judged(a, b)
    (row,) = [line for line in text.splitlines() if line.startswith("vector_search.latency_ms ")]
    metric = "vector_search.latency_ms"
    before, after = a.thresholds[metric]["status"], b.thresholds[metric]["status"]
    assert after == "FAIL" and before != "FAIL"
    assert row.split()[-1] == after and f" {before} " in row and "600" in row, row
    assert "judged differently" in text
    table = compare_judged(a, b, markdown=True).splitlines()
    assert any(line.startswith("| vector_search.latency_ms |") and line.count("|") == 9 for line in table)
    assert "0 of" in compare_judged(a, a)


def test_judged_comparison_of_a_results_file_says_it_needs_a_report(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="not a rendered report"):
        load_judged(SAMPLE)


def test_the_report_reads_verdict_checklist_thresholds_charts_then_environment(outcome: ReportOutcome) -> None:
    html = outcome.files["report.html"].read_text()
    positions = [html.index(f'id="{section}"') for section in ("checklist", "thresholds", "charts", "environment")]
    assert positions == sorted(positions)
    assert html.index('class="verdict"') < positions[0]
    # The environment is collapsed: its table sits inside a closed <details>.
    environment = html[positions[3] :]
    assert "<details><summary" in environment and "<details open" not in environment
    markdown = outcome.files["report.md"].read_text()
    order = [markdown.index(h) for h in ("## Checklist", "## Thresholds", "## Measurements", "## Environment")]
    assert order == sorted(order)


def test_every_checklist_item_of_the_document_is_in_the_report_with_a_status(outcome: ReportOutcome) -> None:
    document = json.loads(outcome.files["report.json"].read_text())
    items = document["checklist"]
    assert len(items) == 36
    assert {i["status"] for i in items} <= {"PASS", "WARN", "FAIL", "NOT EMULATED", "NOT CHECKED YET"}
    by_text = {i["text"]: i for i in items}
    # The sample run recorded no live checks: those items say so, never PASS.
    assert by_text["RDS PostgreSQL accessible via RDS Proxy"]["status"] == "NOT CHECKED YET"
    # Nor did it record the stack's alarms or any drill: not checked, never a pass.
    assert by_text["Alarms configured and tested"]["status"] == "NOT CHECKED YET"
    assert "not recorded in this run" in by_text["Alarms configured and tested"]["evidence"]
    # The sample's data_deletion error rate breaches its critical level: the Redis-from-Lambda item fails.
    assert by_text["ElastiCache Redis accessible from Lambda"]["status"] == "FAIL"
    assert by_text["NAT Gateway provisioned"]["status"] == "NOT EMULATED"
    assert "not required" in by_text["NAT Gateway provisioned"]["evidence"]


def test_every_judged_percentile_states_its_sample_size_and_interval(outcome: ReportOutcome) -> None:
    document = json.loads(outcome.files["report.json"].read_text())
    percentiles = [t for t in document["thresholds"] if t["statistic"].startswith("p") and t["status"] != "ERROR"]
    assert percentiles
    for t in percentiles:
        low, high = t["interval_95"]
        assert t["sample_size"] > 0
        assert low <= t["measured"] <= high
        assert t["conclusive"] is not (low <= (t["level"] or 0) <= high and low < high)


RESTORE_NOT_EMULATED = "the compose stack keeps no WAL archive: no backup to restore from"


def test_a_threshold_declared_not_emulated_shows_so_with_its_reason_in_every_rendering(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    shutil.copy(SAMPLE, results)
    ResultsWriter.open(results).record_not_emulated("drill.restore.rto_s", RESTORE_NOT_EMULATED)
    rendered = render_report(results, tmp_path / "report", load_thresholds(DEFAULTS))
    (restore,) = [r for r in rendered.evaluation if r.threshold.id == "drill.restore.rto_s"]
    assert (restore.status, restore.message) == (Status.NOT_EMULATED, RESTORE_NOT_EMULATED)
    # The run's other missing figures still break it: NOT EMULATED covers only what was declared.
    assert rendered.exit_code == ExitCode.BROKEN
    by_id = {t["id"]: t for t in json.loads(rendered.files["report.json"].read_text())["thresholds"]}
    assert (by_id["drill.restore.rto_s"]["status"], by_id["drill.restore.rto_s"]["message"]) == (
        "NOT EMULATED",
        RESTORE_NOT_EMULATED,
    )
    markdown = rendered.files["report.md"].read_text()
    assert f"- **NOT EMULATED** `drill.restore.rto_s`: {RESTORE_NOT_EMULATED}" in markdown
    assert "1 of 38 thresholds NOT EMULATED on this backend" in markdown.splitlines()[2]
    html = rendered.files["report.html"].read_text()
    assert 'class="row-NOT-EMULATED"' in html and RESTORE_NOT_EMULATED in html
    suite = ET.parse(rendered.files["junit.xml"]).getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1"
    text = format_verdict_table(rendered.evaluation)
    assert f"NOT EMULATED drill.restore.rto_s: {RESTORE_NOT_EMULATED}" in text
    left_out = "; 1 of 38 thresholds NOT EMULATED on this backend (neither judged nor passed)"
    assert text.splitlines()[-1].endswith(left_out)
