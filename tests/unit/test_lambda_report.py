import pytest

from harness.lambda_runtime.report_line import (
    ReportLine,
    ReportLineError,
    billed_duration_ms,
    find_report_line,
    parse_report_line,
)

# The example CloudWatch Logs shows (REFERENCE.md, section 1).
AWS_EXAMPLE = (
    "REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 395.99 ms\tBilled Duration: 396 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 301 MB\tInit Duration: 265.72 ms"
)


def test_formats_exactly_as_cloudwatch_shows_it():
    line = ReportLine("3604209a-e9a3-11e6-939a-754dd98c7be3", 395.99, 396, 512, 301, 265.72)
    assert line.format() == AWS_EXAMPLE


def test_parses_the_aws_example():
    line = parse_report_line(AWS_EXAMPLE)
    assert line == ReportLine("3604209a-e9a3-11e6-939a-754dd98c7be3", 395.99, 396, 512, 301, 265.72)
    assert line.cold_start


def test_round_trip_of_a_warm_failed_invocation():
    line = ReportLine("id-1", 3001.5, 3002, 128, 128, None, status="error", error_type="Runtime.OutOfMemory")
    text = line.format()
    assert "Init Duration" not in text
    assert text.endswith("\tStatus: error\tError Type: Runtime.OutOfMemory")
    assert parse_report_line(text) == line
    assert not line.cold_start


def test_tolerates_aws_trailing_tab_and_newline():
    assert parse_report_line(AWS_EXAMPLE + "\t\n").max_memory_used_mb == 301


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("START RequestId: x Version: $LATEST", "not a REPORT line"),
        ("REPORT RequestId: x\tDuration: 1.00 ms", "lacks Billed Duration, Memory Size, Max Memory Used"),
        (
            "REPORT RequestId: x\tDuration: fast ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB",
            "malformed number",
        ),
        ("REPORT RequestId: x\tgarbage", "is not 'Name: value"),
    ],
)
def test_rejects_what_is_not_a_report_line(text, message):
    with pytest.raises(ReportLineError, match=message):
        parse_report_line(text)


def test_billing_rounds_up_to_the_millisecond_and_includes_init():
    assert billed_duration_ms(395.01) == 396
    assert billed_duration_ms(0.2) == 1
    assert billed_duration_ms(100.0, 265.72) == 366


def test_gb_seconds_use_configured_memory():
    assert ReportLine("x", 999.2, 1000, 512, 60).gb_seconds == pytest.approx(0.5)
    assert ReportLine("x", 1.0, 1, 128, 60).gb_seconds == pytest.approx(0.001 / 8)


def test_finds_the_last_report_line_in_a_log_tail():
    tail = f"START RequestId: a Version: $LATEST\nhello\nEND RequestId: a\n{AWS_EXAMPLE}\n"
    assert find_report_line(tail).duration_ms == 395.99
    with pytest.raises(ReportLineError, match="no REPORT line"):
        find_report_line("START RequestId: a\nEND RequestId: a\n")
