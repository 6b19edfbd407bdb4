import json

import pytest

from harness.model.credits import (
    CpuCreditLedger,
    IoCreditLedger,
    load_io_bucket,
    load_ledger,
    save_io_bucket,
    save_ledger,
)
from harness.sizing import cache_node_type, db_instance_class, storage_sizing

CACHE = cache_node_type("cache.t3.micro").credits
RDS = db_instance_class("db.t3.micro").credits
HOUR = 3600.0


def test_the_micro_classes_carry_the_documented_credit_figures():
    for credits in (CACHE, RDS):
        assert credits is not None
        assert (credits.vcpus, credits.baseline_per_vcpu, credits.credits_per_hour, credits.max_balance) == (
            2,
            0.10,
            12.0,
            288.0,
        )
        assert credits.baseline_vcpus == pytest.approx(0.2)
    assert (CACHE.mode, RDS.mode) == ("standard", "unlimited")
    assert db_instance_class("db.m5.large").credits is None


@pytest.mark.parametrize(
    ("case", "credits", "start", "surplus", "seconds", "cpu_s", "balance", "surplus_after", "charged", "throttled"),
    [
        # earn: an idle hour earns 12 credits
        ("earn", CACHE, 0.0, 0.0, HOUR, 0.0, 12.0, 0.0, 0.0, False),
        # cap: earnings above 288 are discarded
        ("cap", CACHE, 288.0, 0.0, HOUR, 0.0, 288.0, 0.0, 0.0, False),
        # the baseline (0.2 vCPU for an hour = 720 CPU-seconds = 12 credits) spends exactly what it earns
        ("baseline", CACHE, 100.0, 0.0, HOUR, 720.0, 100.0, 0.0, 0.0, False),
        # spend: one busy Redis thread for an hour spends 60 and earns 12
        ("spend", CACHE, 288.0, 0.0, HOUR, HOUR, 240.0, 0.0, 0.0, False),
        # throttle: a standard instance that runs out is held at its baseline
        ("throttle", CACHE, 10.0, 0.0, HOUR, HOUR, 0.0, 0.0, 0.0, True),
        # surplus: 0.74 vCPU for an hour on an empty unlimited instance borrows 44.4 - 12 = 32.4 credits
        ("surplus", RDS, 0.0, 0.0, HOUR, 0.74 * HOUR, 0.0, 32.4, 0.0, False),
        # pay-down: earnings repay surplus before they rebuild the balance
        ("pay-down", RDS, 0.0, 20.0, HOUR, 0.0, 0.0, 8.0, 0.0, False),
        ("pay-down past zero", RDS, 0.0, 5.0, HOUR, 0.0, 7.0, 0.0, 0.0, False),
        # charge: surplus beyond what 24 h can earn (288) is charged at once
        ("charge", RDS, 0.0, 280.0, HOUR, HOUR, 0.0, 288.0, 40.0, False),
        # an unlimited instance spends its balance before it borrows
        ("balance first", RDS, 30.0, 0.0, HOUR, HOUR, 0.0, 18.0, 0.0, False),
    ],
)
def test_the_credit_ledger_books_like_ec2(
    case, credits, start, surplus, seconds, cpu_s, balance, surplus_after, charged, throttled
):
    ledger = CpuCreditLedger(credits, start, surplus)
    step = ledger.step(seconds, cpu_s)
    assert step.balance == pytest.approx(balance), case
    assert step.surplus_balance == pytest.approx(surplus_after), case
    assert step.surplus_charged == pytest.approx(charged), case
    assert step.throttled is throttled, case
    assert step.earned == pytest.approx(credits.credits_per_hour * seconds / 3600), case
    assert step.spent == pytest.approx(cpu_s / 60), case
    assert step.cap_vcpus == pytest.approx(0.2 if throttled else 2.0), case


def test_a_throttled_cache_node_recovers_once_it_earns_a_credit():
    ledger = CpuCreditLedger(CACHE, 0.0)
    assert ledger.throttled and ledger.cap_vcpus == pytest.approx(0.2)
    ledger.step(60.0, 0.0)
    assert not ledger.throttled and ledger.cap_vcpus == 2.0


def test_an_unlimited_instance_is_never_throttled():
    ledger = CpuCreditLedger(RDS, 0.0)
    for _ in range(100):
        step = ledger.step(60.0, 120.0)
    assert not step.throttled and step.cap_vcpus == 2.0
    assert ledger.surplus_balance + ledger.surplus_charged == pytest.approx(100 * (2.0 - 0.2))


@pytest.mark.parametrize(("mode", "balance"), [("off", 288.0), ("live", 288.0), ("drained", 0.0)])
def test_drained_starts_empty_and_the_others_rested(mode, balance):
    assert CpuCreditLedger.starting(CACHE, mode).balance == balance
    with pytest.raises(ValueError, match="cpu_credits must be one of"):
        CpuCreditLedger.starting(CACHE, "full")


def test_settling_charges_the_outstanding_surplus_and_prices_it_per_vcpu_hour():
    ledger = CpuCreditLedger(RDS, 0.0, surplus_balance=90.0, surplus_charged=30.0)
    assert ledger.settle() == 90.0
    assert ledger.surplus_charged == 120.0 and ledger.surplus_balance == 0.0
    # 120 credits = 2 vCPU-hours at 0.075 USD
    assert ledger.surplus_usd() == pytest.approx(0.15)


def test_the_documented_sign_off_load_costs_about_29_usd_a_month_in_surplus():
    # The last sign-off: RDS at 37 % of two vCPUs around the clock for a 730-hour billing month.
    ledger = CpuCreditLedger(RDS, 0.0)
    for _ in range(730):
        ledger.step(HOUR, 0.74 * HOUR)
    ledger.settle()
    assert ledger.surplus_usd() == pytest.approx(730 * 32.4 / 60 * 0.075)
    assert 29 <= ledger.surplus_usd() <= 30


def test_negative_time_or_cpu_is_refused():
    with pytest.raises(ValueError):
        CpuCreditLedger(CACHE, 0.0).step(-1.0, 0.0)
    with pytest.raises(ValueError):
        CpuCreditLedger(CACHE, 0.0).step(1.0, -1.0)


@pytest.mark.parametrize(
    ("storage_type", "gib", "baseline", "burst", "bucket"),
    [
        ("gp2", 20, 100, 3000, 5_400_000),  # 3 IOPS/GiB is 60: the floor of 100 applies
        ("gp2", 100, 300, 3000, 5_400_000),
        ("gp2", 1000, 3000, 3000, 0),  # at 1,000 GiB the baseline reaches the burst rate: no bucket
        ("gp3", 20, 3000, 3000, 0),
    ],
)
def test_volume_iops_follow_the_ebs_formulas(storage_type, gib, baseline, burst, bucket):
    storage = storage_sizing(storage_type, gib)
    assert (storage.baseline_iops, storage.burst_iops, storage.io_credits_max) == (baseline, burst, bucket)


def test_a_full_gp2_bucket_lasts_about_31_minutes_at_full_burst_then_falls_to_baseline():
    storage = storage_sizing("gp2", 20)
    assert storage.full_burst_s() / 60 == pytest.approx(31.03, abs=0.01)
    ledger = IoCreditLedger.starting(storage, "live")
    assert ledger.allowed_iops == 3000
    seconds = 0
    while ledger.allowed_iops == 3000 and seconds < 10_000:
        ledger.step(1.0, 3000.0)
        seconds += 1
    assert seconds == pytest.approx(storage.full_burst_s(), abs=1)
    assert ledger.allowed_iops == 100
    assert IoCreditLedger.starting(storage, "drained").allowed_iops == 100
    assert IoCreditLedger.starting(storage_sizing("gp3", 20), "drained").allowed_iops == 3000


def test_the_live_ledger_earns_while_no_run_samples_it(tmp_path):
    path = tmp_path / "credits.json"
    ledger = CpuCreditLedger(CACHE, 10.0, 0.0)
    save_ledger(path, ledger, now=1000.0)
    assert json.loads(path.read_text())["balance"] == 10.0
    later = load_ledger(path, CACHE, "live", now=1000.0 + HOUR)
    assert later.balance == pytest.approx(22.0)
    # drained ignores what was saved: every drained run starts empty
    assert load_ledger(path, CACHE, "drained", now=1000.0 + HOUR).balance == 0.0
    path.write_text("not json")
    assert load_ledger(path, CACHE, "live", now=0.0).balance == 288.0


@pytest.mark.parametrize(
    ("case", "saved", "mode", "start_balance", "idle_s", "balance"),
    [
        ("live resumes from the saved balance and earns while idle", 10.0, "live", None, HOUR, 22.0),
        ("live earning stops at the maximum", 280.0, "live", None, HOUR, 288.0),
        ("a saved balance outranks the configured start", 0.0, "live", 5.0, 0.0, 0.0),
        ("no saved ledger: live starts at the configured balance", None, "live", 0.5, 0.0, 0.5),
        ("no saved ledger: the configured start is capped at the maximum", None, "live", 1000.0, 0.0, 288.0),
        ("no saved ledger and no start: a rested node", None, "live", None, 0.0, 288.0),
        ("drained ignores what was saved and the start", 100.0, "drained", 50.0, HOUR, 0.0),
        ("off ignores what was saved", 1.0, "off", None, 0.0, 288.0),
    ],
)
def test_the_cpu_ledger_is_kept_between_runs(tmp_path, case, saved, mode, start_balance, idle_s, balance):
    path = tmp_path / "credits-redis.json"
    if saved is not None:
        save_ledger(path, CpuCreditLedger(CACHE, saved), now=1000.0)
    loaded = load_ledger(path, CACHE, mode, now=1000.0 + idle_s, start_balance=start_balance)
    assert loaded.balance == pytest.approx(balance), case


GP2 = storage_sizing("gp2", 20)


@pytest.mark.parametrize(
    ("case", "storage", "saved", "mode", "idle_s", "balance", "iops"),
    [
        ("an empty bucket resumes empty: baseline", GP2, 0.0, "live", 0.0, 0.0, 100),
        ("it refills at the baseline rate while no run samples it", GP2, 0.0, "live", 60.0, 6000.0, 3000),
        ("refilling stops at the bucket's size", GP2, 5_399_000.0, "live", HOUR, 5_400_000.0, 3000),
        ("drained ignores the saved bucket", GP2, 5_400_000.0, "drained", 0.0, 0.0, 100),
        ("off starts full", GP2, 0.0, "off", 0.0, 5_400_000.0, 3000),
        ("a bucket saved for another volume is not reused", storage_sizing("gp2", 100), 0.0, "live", 0.0, 5.4e6, 3000),
    ],
)
def test_the_gp2_bucket_is_kept_between_runs(tmp_path, case, storage, saved, mode, idle_s, balance, iops):
    path = tmp_path / "credits-postgres-io.json"
    bucket = IoCreditLedger(GP2, saved)
    save_io_bucket(path, bucket, now=1000.0)
    # A different size with the same bucket maximum is the same bucket; a different maximum is a new volume.
    if storage is not GP2:
        raw = json.loads(path.read_text())
        raw["io_credits_max"] = 1
        path.write_text(json.dumps(raw))
    loaded = load_io_bucket(path, storage, mode, now=1000.0 + idle_s)
    assert (loaded.balance, loaded.allowed_iops) == (pytest.approx(balance), iops), case


def test_a_damaged_or_missing_bucket_file_gives_a_full_bucket(tmp_path):
    path = tmp_path / "credits-postgres-io.json"
    assert load_io_bucket(path, GP2, "live", now=0.0).balance == 5_400_000
    path.write_text("[1, 2]")
    assert load_io_bucket(path, GP2, "live", now=0.0).balance == 5_400_000
    path.write_text('{"balance": "x", "saved_at": 0, "io_credits_max": 5400000}')
    assert load_io_bucket(path, GP2, "live", now=0.0).balance == 5_400_000
    # gp3 does not burst: nothing to keep
    assert load_io_bucket(path, storage_sizing("gp3", 20), "live", now=0.0).allowed_iops == 3000
