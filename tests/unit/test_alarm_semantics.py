"""CloudWatch alarm semantics, table by table: M of N, each missing-data mode, low-sample percentiles,
period alignment, ratio (metric math) datapoints."""

import pytest

from harness.monitoring.semantics import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmRule,
    MissingData,
    RuleError,
    datapoints,
    evaluate,
    min_samples_for_percentile,
    ratio_datapoints,
)

PERIOD = 60


def rule(m: int = 1, n: int = 1, missing: str = "missing", statistic: str = "Average", **extra) -> AlarmRule:
    return AlarmRule(
        statistic=statistic,
        comparison="GreaterThanOrEqualToThreshold",
        threshold=70.0,
        period_s=PERIOD,
        evaluation_periods=n,
        datapoints_to_alarm=m,
        treat_missing_data=MissingData(missing),
        **extra,
    )


def samples_from(pattern: str) -> list[tuple[float, float]]:
    """`0 X - X`: one sample per period, 0 = below the threshold, X = breaching, - = no sample."""
    found = []
    for i, mark in enumerate(pattern.split()):
        if mark != "-":
            found.append((i * PERIOD + 5.0, 90.0 if mark == "X" else 10.0))
    return found


def final_state(pattern: str, alarm_rule: AlarmRule, initial: str | None = None) -> str:
    marks = pattern.split()
    points = datapoints(samples_from(pattern), alarm_rule, 0.0, len(marks) * PERIOD - 1.0)
    outcome = evaluate(points, alarm_rule)
    return outcome.evaluations[-1].state


@pytest.mark.parametrize(
    ("pattern", "m", "n", "expected"),
    [
        ("0 0 0", 3, 3, OK),
        ("X X X", 3, 3, ALARM),
        ("X X 0", 3, 3, OK),
        ("0 X X", 2, 3, ALARM),
        ("X 0 X", 2, 3, ALARM),
        ("X 0 0", 2, 3, OK),
        ("X 0 0 0 X", 2, 3, OK),
        ("0 0 X 0 X", 2, 3, ALARM),
        ("X", 1, 1, ALARM),
        ("X X 0 0 0", 1, 3, OK),
        ("0 0 X 0 0", 1, 3, ALARM),
    ],
)
def test_m_of_n_alarms_only_when_m_of_the_last_n_datapoints_breach(pattern, m, n, expected):
    assert final_state(pattern, rule(m, n)) == expected


@pytest.mark.parametrize(
    ("pattern", "missing", "expected"),
    [
        # 3 of 3, each treatment (the AWS documentation's table for DatapointsToAlarm 3 of 3).
        ("0 - X", "missing", OK),
        ("0 - X", "ignore", OK),
        ("0 - X", "breaching", OK),
        ("0 - X", "notBreaching", OK),
        ("X - X", "breaching", ALARM),
        ("X - X", "notBreaching", OK),
        ("X - X", "missing", ALARM),
        ("X - X", "ignore", ALARM),
        ("- - X", "missing", ALARM),
        ("- - X", "notBreaching", OK),
        ("- - 0", "breaching", OK),
        ("- - -", "breaching", ALARM),
        ("- - -", "notBreaching", OK),
    ],
)
def test_each_missing_data_treatment_fills_or_skips_missing_datapoints(pattern, missing, expected):
    assert final_state(pattern, rule(3, 3, missing)) == expected


def test_all_missing_goes_to_insufficient_data_under_missing_and_keeps_the_state_under_ignore():
    # Alarm first, then three empty periods.
    pattern = "X X X - - -"
    assert final_state(pattern, rule(3, 3, "missing")) == INSUFFICIENT_DATA
    assert final_state(pattern, rule(3, 3, "ignore")) == ALARM


def test_a_series_starting_mid_window_counts_the_periods_before_it_as_missing():
    # One breaching point with notBreaching: the two periods before the series are fills, not breaches.
    assert final_state("X", rule(3, 3, "notBreaching")) == OK
    assert final_state("X", rule(3, 3, "breaching")) == ALARM


def test_datapoints_are_period_statistics_aligned_to_the_clock():
    alarm_rule = rule(statistic="Average")
    # Two samples in [60, 120), one in [120, 180): periods start at multiples of 60 s since the epoch.
    points = datapoints([(61.0, 60.0), (119.0, 100.0), (121.0, 10.0)], alarm_rule, 61.0, 121.0)
    assert [(p.start, p.value, p.samples) for p in points] == [(60.0, 80.0, 2), (120.0, 10.0, 1)]
    assert [p.breaching for p in points] == [True, False]


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("Average", 50.0), ("Maximum", 90.0), ("Minimum", 10.0), ("Sum", 150.0), ("SampleCount", 3.0), ("p50", 50.0)],
)
def test_each_statistic_reduces_a_period_the_way_cloudwatch_does(statistic, expected):
    points = datapoints([(1.0, 10.0), (2.0, 50.0), (3.0, 90.0)], rule(statistic=statistic), 0.0, 3.0)
    assert points[0].value == pytest.approx(expected)


def test_a_mean_hides_a_breach_that_sixty_second_datapoints_show():
    """The issue's case: a run's mean CPU passes while one minute at 75 % breaches a 70 % alarm."""
    quiet = [(t, 20.0) for t in range(0, 600, 5)]
    busy = [(600.0 + t, 75.0) for t in range(0, 60, 5)]
    samples = quiet + busy
    assert sum(v for _, v in samples) / len(samples) < 70
    outcome = evaluate(datapoints(samples, rule(1, 1), 0.0, 659.0), rule(1, 1))
    assert outcome.fired
    assert outcome.first_alarm is not None and outcome.first_alarm.window[-1].value == pytest.approx(75.0)


@pytest.mark.parametrize(("p", "needed"), [(99, 1000), (99.9, 10000), (90, 100), (50, 20)])
def test_percentiles_need_ten_over_one_minus_p_samples(p, needed):
    assert min_samples_for_percentile(p) == needed


def test_a_low_sample_percentile_is_judged_under_evaluate_and_keeps_the_state_under_ignore():
    few = [(1.0, 90.0), (2.0, 95.0)]
    for mode, expected in (("evaluate", ALARM), ("ignore", INSUFFICIENT_DATA)):
        alarm_rule = rule(statistic="p99", low_sample_percentiles=mode)
        points = datapoints(few, alarm_rule, 0.0, 2.0)
        assert points[0].low_sample
        assert evaluate(points, alarm_rule).evaluations[-1].state == expected


def test_enough_samples_make_a_percentile_significant():
    alarm_rule = rule(statistic="p90", low_sample_percentiles="ignore")
    many = [(i * 0.1, 90.0) for i in range(100)]
    points = datapoints(many, alarm_rule, 0.0, 9.9)
    assert not points[0].low_sample
    assert evaluate(points, alarm_rule).fired


def test_ratio_datapoints_divide_sums_per_period_and_skip_periods_without_trials():
    alarm_rule = AlarmRule("Average", "LessThanThreshold", 70.0, 60, 1, 1)
    intervals = [(1.0, 30, 60), (30.0, 10, 40), (130.0, 9, 10)]
    points = ratio_datapoints(intervals, alarm_rule, 0.0, 130.0)
    assert [(p.value, p.breaching) for p in points] == [(40.0, True), (None, None), (90.0, False)]


def test_transitions_list_each_state_change_with_its_time():
    outcome = evaluate(datapoints(samples_from("0 X 0"), rule(), 0.0, 179.0), rule())
    assert outcome.transitions == [(60.0, INSUFFICIENT_DATA, OK), (120.0, OK, ALARM), (180.0, ALARM, OK)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"period_s": 45}, "period 45s"),
        ({"period_s": 90}, "period 90s"),
        ({"datapoints_to_alarm": 4}, "datapoints_to_alarm 4"),
        ({"statistic": "Median"}, "statistic 'Median'"),
        ({"comparison": "Above"}, "comparison 'Above'"),
        ({"period_s": 3600, "evaluation_periods": 25, "datapoints_to_alarm": 1}, "one-day limit"),
    ],
)
def test_rules_cloudwatch_would_refuse_are_refused_with_the_field_named(fields, message):
    base = {
        "statistic": "Average",
        "comparison": "GreaterThanThreshold",
        "threshold": 1.0,
        "period_s": 60,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
    }
    with pytest.raises(RuleError, match=message):
        AlarmRule(**(base | fields))


def test_high_resolution_periods_are_accepted():
    assert AlarmRule("Maximum", "GreaterThanThreshold", 1.0, 10, 3, 2).period_s == 10
