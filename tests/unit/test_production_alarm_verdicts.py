"""Would the production alarms have fired: the alarms replayed over a run's recorded series, including the
issue's case (a passing mean over a breaching minute), histogram and counter alarms, the emulator
cross-check and the report sections."""

from harness.measure.results import ResultsWriter, load_results
from harness.monitoring.verdicts import FIRED, NOT_EVALUATED, NOT_MEASURED, QUIET, production_alarm_verdicts
from harness.report.render import render_report
from harness.thresholds import evaluate, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

T0 = 1_800_000_000.0  # a minute boundary


def write_run(tmp_path, cpu_busy: float, emulator: dict | None = None):
    writer = ResultsWriter.open(tmp_path / "results.json", run={"scenario_size": "ci"})
    # Ten quiet minutes, then three minutes at `cpu_busy`, one sample every 5 s.
    for i in range(0, 600, 5):
        writer.record_value("rds.cpu_pct", 20.0, {"scenario": "a"}, t=T0 + i)
    for i in range(600, 780, 5):
        writer.record_value("rds.cpu_pct", cpu_busy, {"scenario": "b"}, t=T0 + i)
    for i in range(0, 300, 10):
        writer.record_rate("cache.hit_rate_pct", 90, 100, t=T0 + i)
    writer.record_latency("lambda.audit_logging.duration_ms", [120.0, 190_000.0])
    writer.record_count("cache.evictions", 0)
    if emulator is not None:
        writer.update_run({"cloudwatch_emulator": emulator})
    return load_results(tmp_path / "results.json")


def verdicts_by_name(results):
    return {v.alarm.name: v for v in production_alarm_verdicts(load_thresholds(DEFAULT_THRESHOLDS_FILE), results)}


def test_three_busy_minutes_fire_the_cpu_alarm_although_the_run_mean_passes(tmp_path):
    results = write_run(tmp_path, cpu_busy=75.0)
    outcome = {r.threshold.id: r for r in evaluate(load_thresholds(DEFAULT_THRESHOLDS_FILE), results)}
    assert outcome["rds.cpu_pct"].status.value == "PASS"
    verdict = verdicts_by_name(results)["dbunit-rds.cpu_pct-warning"]
    assert verdict.answer == FIRED
    assert verdict.first_alarm_at == T0 + 780  # the third busy minute closes at 13:00 after T0
    assert [d.breaching for d in verdict.deciding][-3:] == [True, True, True]
    assert verdicts_by_name(results)["dbunit-rds.cpu_pct-critical"].answer == QUIET


def test_two_busy_minutes_of_five_do_not_fire_a_three_of_five_alarm(tmp_path):
    writer = ResultsWriter.open(tmp_path / "results.json", run={})
    for minute in range(5):
        value = 80.0 if minute in (1, 3) else 10.0
        writer.record_value("rds.cpu_pct", value, t=T0 + 60 * minute + 1)
    verdict = verdicts_by_name(load_results(tmp_path / "results.json"))["dbunit-rds.cpu_pct-warning"]
    assert verdict.answer == QUIET
    assert "2 of 5" in verdict.reason


def test_histogram_and_counter_alarms_are_judged_from_the_run_maximum_and_total(tmp_path):
    verdicts = verdicts_by_name(write_run(tmp_path, cpu_busy=20.0))
    assert verdicts["dbunit-lambda.audit_logging.duration_ms-warning"].answer == FIRED
    assert verdicts["dbunit-lambda.audit_logging.duration_ms-critical"].answer == QUIET
    assert verdicts["dbunit-cache.evictions-warning"].answer == QUIET
    assert verdicts["dbunit-cache.hit_rate_pct-warning"].answer == QUIET
    assert verdicts["dbunit-lambda.data_export.duration_ms-warning"].answer == NOT_MEASURED
    assert verdicts["dbunit-cost.monthly_usd-warning"].answer == NOT_EVALUATED


def test_the_emulator_cross_check_flags_where_the_emulator_disagrees(tmp_path):
    emulator = {"first_alarm": {"dbunit-rds.cpu_pct-warning": None, "dbunit-rds.cpu_pct-critical": T0 + 700}}
    verdicts = verdicts_by_name(write_run(tmp_path, cpu_busy=75.0, emulator=emulator))
    assert verdicts["dbunit-rds.cpu_pct-warning"].agrees is False
    assert verdicts["dbunit-rds.cpu_pct-critical"].agrees is False
    assert verdicts["dbunit-cache.cpu_pct-warning"].agrees is None


def test_the_report_has_the_alarm_table_and_says_when_no_dashboard_datapoints_were_recorded(tmp_path):
    write_run(tmp_path, cpu_busy=75.0)
    outcome = render_report(tmp_path / "results.json", tmp_path / "report", load_thresholds(DEFAULT_THRESHOLDS_FILE))
    markdown = outcome.files["report.md"].read_text()
    html = outcome.files["report.html"].read_text()
    for text in (markdown, html):
        assert "Would the production alarms have fired?" in text
        assert "dbunit-rds.cpu_pct-warning" in text
        # This run recorded no dashboards' datapoints (no scenario session): the section says so, draws nothing.
        assert "CloudWatch dashboards" in text and "not recorded in this run" in text
    assert "NOT EMULATED" in html
