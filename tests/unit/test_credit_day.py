import pytest

from harness.model.credit_day import TrafficError, demand_by_hour, load_traffic, model_day
from harness.model.projection import DEFAULT_MODEL
from harness.sizing import cache_node_type, db_instance_class

CACHE = cache_node_type("cache.t3.micro").credits
RDS = db_instance_class("db.t3.micro").credits
DAYS = 730 / 24


def busy(hours: int, vcpus: float = 1.0) -> list[float]:
    """`hours` busy hours at `vcpus` from midnight, idle after."""
    return [vcpus * 3600.0 if h < hours else 0.0 for h in range(24)]


@pytest.mark.parametrize(
    ("case", "credits", "demand", "throttled_hours", "surplus_credits", "last_balance"),
    [
        ("idle", CACHE, busy(0), 0.0, 0.0, 288.0),
        ("at the baseline", CACHE, [720.0] * 24, 0.0, 0.0, 288.0),
        # one busy Redis thread all day: the balance is gone after the settling days; throttled all day
        ("a busy thread all day", CACHE, busy(24), 24.0, 0.0, 0.0),
        # 4 busy hours spend 4 x 48 = 192 and 20 idle hours earn 240: the balance lasts
        ("four busy hours", CACHE, busy(4), 0.0, 0.0, 288.0),
        # 8 busy hours: the 16 idle hours earn 192, which lasts 192 / 48 = 4 busy hours; 4 are throttled
        ("eight busy hours", CACHE, busy(8), 4.0, 0.0, 192.0),
        # RDS is never throttled: 0.74 vCPU all day borrows 24 x (44.4 - 12) credits a day
        ("rds at the sign-off's load", RDS, busy(24, 0.74), 0.0, 24 * 32.4, 0.0),
        ("rds idle", RDS, busy(0), 0.0, 0.0, 288.0),
    ],
)
def test_the_modelled_day(case, credits, demand, throttled_hours, surplus_credits, last_balance):
    day = model_day(credits, demand, DAYS)
    assert day.throttled_hours == pytest.approx(throttled_hours, abs=1 / 60), case
    assert day.surplus_credits == pytest.approx(surplus_credits, rel=1e-6, abs=1e-6), case
    assert day.balance_by_hour[-1] == pytest.approx(last_balance, abs=1e-6), case
    assert len(day.balance_by_hour) == len(day.surplus_by_hour) == 24
    assert day.surplus_usd_per_month == pytest.approx(surplus_credits / 60 * credits.surplus_usd_per_vcpu_hour * DAYS)


def test_the_sign_off_load_around_the_clock_costs_about_29_usd_a_month():
    assert model_day(RDS, busy(24, 0.74), DAYS).surplus_usd_per_month == pytest.approx(29.57, abs=0.01)


def test_demand_is_the_traffic_at_the_measured_cpu_per_request_plus_idle():
    traffic = load_traffic(DEFAULT_MODEL)
    requests = traffic.hourly_requests("redis")
    assert sum(requests) == pytest.approx(traffic.requests_per_month["redis"] / traffic.days_per_month)
    demand = demand_by_hour(traffic, "redis", cpu_s_per_request=1e-4, idle_vcpus=0.01)
    assert demand[0] == pytest.approx(requests[0] * 1e-4 + 36.0)
    # the busiest hour of the shape is the busiest hour of demand
    assert demand.index(max(demand)) == traffic.hourly_shape.index(max(traffic.hourly_shape))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("deployment: {}\n", "section 'traffic' is missing"),
        ("traffic: {hourly_shape: [1, 2]}\n", "hourly_shape must be 24 numbers"),
        ("traffic: {hourly_shape: [0" + ", 0" * 23 + "]}\n", "not all zero"),
        (
            "traffic: {hourly_shape: [1" + ", 1" * 23 + "], cache_requests_per_month: 1, db_requests_per_month: -1}\n",
            "traffic.db_requests_per_month must be a non-negative number",
        ),
    ],
)
def test_a_bad_traffic_section_is_named(tmp_path, body, message):
    path = tmp_path / "model.yaml"
    path.write_text(body)
    with pytest.raises(TrafficError, match=message):
        load_traffic(path)


def test_demand_must_be_24_non_negative_hours():
    with pytest.raises(ValueError, match="24 non-negative"):
        model_day(CACHE, [1.0] * 23, DAYS)
