import pytest

from harness.model.projection import DEFAULT_MODEL, ModelError, load_model, project

MEASURED = {"data_export": 100.0, "data_deletion": 100.0, "audit_logging": 100.0}


def test_default_model_loads():
    model = load_model(DEFAULT_MODEL)
    assert model.rds_instances == 1
    assert set(model.invocations) == {"data_export", "data_deletion", "audit_logging"}


def test_projection_arithmetic():
    model = load_model(DEFAULT_MODEL)
    p = project(model, MEASURED, rds_cpu_surplus_usd=0.0)
    assert p.rds_hours == 744 and p.elasticache_hours == 744
    # 2000 x 0.1 s x 0.5 GB + 1000 x 0.1 x 0.25 + 300000 x 0.1 x 0.125
    assert p.lambda_gb_seconds == pytest.approx(100 + 25 + 3750)
    assert p.lambda_requests == 303_000
    assert p.lambda_requests_pct == pytest.approx(30.3)
    assert p.lambda_gb_seconds_pct == pytest.approx(3875 / 4000)
    assert p.breakdown_usd["rds_instance"] == pytest.approx(730 * 0.018)
    assert p.breakdown_usd["elasticache_node"] == pytest.approx(730 * 0.017)
    assert p.breakdown_usd["rds_storage"] == pytest.approx(20 * 0.115)
    assert p.monthly_usd_after_free_tier == pytest.approx(sum(p.breakdown_usd.values()))


def test_the_rds_cpu_surplus_is_part_of_the_monthly_cost():
    model = load_model(DEFAULT_MODEL)
    without = project(model, MEASURED, rds_cpu_surplus_usd=0.0)
    with_surplus = project(model, MEASURED, rds_cpu_surplus_usd=29.6)
    assert with_surplus.breakdown_usd["rds_cpu_surplus"] == 29.6
    assert with_surplus.monthly_usd_after_free_tier == pytest.approx(without.monthly_usd_after_free_tier + 29.6)
    with pytest.raises(ModelError, match="must not be negative"):
        project(model, MEASURED, rds_cpu_surplus_usd=-1.0)


def test_gb_seconds_follow_the_measured_billed_duration():
    model = load_model(DEFAULT_MODEL)
    slow = project(model, {f: 2 * v for f, v in MEASURED.items()}, rds_cpu_surplus_usd=0.0)
    assert slow.lambda_gb_seconds == pytest.approx(
        2 * project(model, MEASURED, rds_cpu_surplus_usd=0.0).lambda_gb_seconds
    )


def test_a_function_never_measured_is_an_error():
    with pytest.raises(ModelError, match="no measured billed duration for data_export"):
        project(load_model(DEFAULT_MODEL), {"data_deletion": 1.0, "audit_logging": 1.0}, rds_cpu_surplus_usd=0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "mapping at the top level"),
        ("deployment: {}\n", "section 'lambda_invocations_per_month' is missing"),
        (DEFAULT_MODEL.read_text().replace("data_export: 2000", "data_exprot: 2000"), "unknown Lambda function"),
        (DEFAULT_MODEL.read_text().replace("rds_instances: 1", "rds_instances: -1"), "rds_instances must be"),
        ("{{{", "not valid YAML"),
    ],
)
def test_bad_model_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(ModelError, match=message):
        load_model(path)


@pytest.mark.parametrize(
    ("alarm_metrics", "dashboards", "alarms_usd", "dashboards_usd"),
    [(32, 4, 22 * 0.10, 3.00), (10, 3, 0.0, 0.0), (0, 0, 0.0, 0.0)],
    ids=["the harness's 32 alarm metrics and 4 dashboards", "exactly the free tier", "none"],
)
def test_alarm_metrics_and_dashboards_beyond_the_free_tier_are_billed(
    alarm_metrics, dashboards, alarms_usd, dashboards_usd
):
    model = load_model(DEFAULT_MODEL)
    p = project(model, MEASURED, rds_cpu_surplus_usd=0.0, alarm_metrics=alarm_metrics, dashboards=dashboards)
    assert p.breakdown_usd["cloudwatch_alarms"] == pytest.approx(alarms_usd)
    assert p.breakdown_usd["cloudwatch_dashboards"] == pytest.approx(dashboards_usd)
    base = project(model, MEASURED, rds_cpu_surplus_usd=0.0)
    assert p.monthly_usd_after_free_tier == pytest.approx(
        base.monthly_usd_after_free_tier + alarms_usd + dashboards_usd
    )
