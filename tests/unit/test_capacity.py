"""Capacity planning's pure logic: the knee on synthetic curves, the memory crossing, headroom, and the
recommendation, table-driven."""

from __future__ import annotations

import math

import pytest

from harness.capacity.knee import (
    CapacityInputError,
    Growth,
    SizePoint,
    crossing_size,
    latency_knee,
    months_until,
    parse_growth,
)
from harness.capacity.recommend import ClassCapacity, Target, load_capacity_model, recommend, verdict
from harness.capacity.results import RampStep
from harness.capacity.sweep import limiting_resource

SIZES = (50_000, 100_000, 200_000, 400_000, 800_000)


def curve(p95) -> list[SizePoint]:
    return [SizePoint(n, p95(n), n * 2000) for n in SIZES]


def test_an_in_memory_hnsw_curve_has_no_knee():
    assert latency_knee(curve(lambda n: 2.0 + 0.8 * math.log(n))) is None


def test_a_curve_that_leaves_memory_at_400k_has_its_knee_there():
    def p95(n: int) -> float:
        return 2.0 + 0.8 * math.log(n) + (0 if n < 400_000 else 40.0 * n / 400_000)

    assert latency_knee(curve(p95)) == 400_000


def test_the_knee_is_the_first_steep_step_whatever_the_order_points_come_in():
    points = [
        SizePoint(800_000, 900.0, 1),
        SizePoint(50_000, 3.0, 1),
        SizePoint(200_000, 40.0, 1),
        SizePoint(100_000, 3.3, 1),
        SizePoint(400_000, 120.0, 1),
    ]
    assert latency_knee(points) == 200_000


def test_a_linear_latency_curve_is_not_a_knee_but_anything_steeper_is():
    assert latency_knee(curve(lambda n: n / 10_000)) is None
    assert latency_knee(curve(lambda n: (n / 10_000) ** 1.2)) == 100_000


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (150 * 2000, 150),  # below the first point: proportional
        (100_000 * 2000, 100_000),  # exactly a measured point
        (300_000 * 2000, 300_000),  # interpolated
        (1_600_000 * 2000, 1_600_000),  # extrapolated from the last point's bytes per document
    ],
)
def test_the_index_crosses_a_memory_budget_where_its_bytes_reach_it(budget, expected):
    assert crossing_size(curve(lambda n: 1.0), budget) == expected


def test_no_index_bytes_means_no_crossing():
    assert crossing_size([SizePoint(1000, 1.0, 0)], 10) is None


@pytest.mark.parametrize(
    ("text", "growth"),
    [("10%", Growth(fraction=0.1)), ("2.5 %/month", Growth(fraction=0.025)), ("5000", Growth(documents=5000))],
)
def test_growth_is_a_percentage_or_a_document_count(text, growth):
    assert parse_growth(text) == growth


@pytest.mark.parametrize("text", ["", "0%", "-5%", "ten", "12.5", "5k"])
def test_bad_growth_is_refused_with_what_to_write(text):
    with pytest.raises(CapacityInputError, match=r"percentage per month|whole number"):
        parse_growth(text)


@pytest.mark.parametrize(
    ("today", "limit", "growth", "months"),
    [
        (100_000, 200_000, Growth(fraction=0.1), math.log(2) / math.log(1.1)),
        (100_000, 200_000, Growth(documents=10_000), 10.0),
        (300_000, 200_000, Growth(documents=10_000), 0.0),
    ],
)
def test_headroom_in_months(today, limit, growth, months):
    assert months_until(today, limit, growth) == pytest.approx(months)


def row(name, ok, measured=800_000, rate=50.0, at=800_000, usd=20.0):
    return ClassCapacity(name, "cache.t3.micro", measured, ok, rate, at, usd)


TARGET = Target(documents=400_000, rate_per_s=30)


@pytest.mark.parametrize(
    ("capacity", "reason"),
    [
        (row("a", 800_000), None),
        (row("a", 400_000), None),
        (row("a", None), "no measured size"),
        (row("a", 200_000), "holds only up to 200,000"),
        (row("a", 200_000, measured=200_000), "unknown: the sweep stopped at 200,000"),
        (row("a", 800_000, rate=None, at=None), "no saturation rate"),
        (row("a", 800_000, at=200_000), "unknown: its rate was measured at 200,000"),
        (row("a", 800_000, rate=29.9), "sustains 29.9/s"),
    ],
)
def test_a_class_holds_the_target_only_where_it_was_measured_to(capacity, reason):
    got = verdict(capacity, TARGET)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


@pytest.mark.parametrize(
    ("rows", "choice"),
    [
        ([row("db.t3.small", 800_000, usd=40.0), row("db.t3.micro", 400_000, usd=25.0)], "db.t3.micro"),
        ([row("db.t3.small", 800_000, usd=40.0), row("db.t3.micro", 200_000, usd=25.0)], "db.t3.small"),
        ([row("db.t3.small", 800_000, usd=40.0), row("db.t3.micro", 800_000, rate=10, usd=25.0)], "db.t3.small"),
        ([row("db.t3.small", 800_000, usd=None), row("db.t4g.micro", 800_000, usd=23.0)], "db.t4g.micro"),
        ([row("b", 800_000, usd=25.0), row("a", 800_000, usd=25.0)], "a"),
        ([row("db.t3.micro", 200_000)], None),
        ([], None),
    ],
)
def test_the_recommendation_is_the_cheapest_class_that_holds_the_target(rows, choice):
    recommendation = recommend(rows, TARGET)
    assert recommendation.choice == choice
    assert set(recommendation.verdicts) == {r.db_class for r in rows}


def test_the_shipped_model_prices_every_sized_class_and_names_a_target():
    from harness.sizing import CACHE_NODE_TYPES, DB_INSTANCE_CLASSES

    model = load_capacity_model()
    for db in DB_INSTANCE_CLASSES:
        assert model.monthly_usd(db, "cache.t3.micro") is not None, db
    assert set(CACHE_NODE_TYPES) <= set(model.hourly_usd)
    small, micro = (
        model.monthly_usd("db.t3.small", "cache.t3.micro"),
        model.monthly_usd("db.t3.micro", "cache.t3.micro"),
    )
    assert small is not None and micro is not None and small > micro
    assert model.target.documents > 0 and model.target.rate_per_s > 0


def step(**changes) -> RampStep:
    base = dict(
        rate=10,
        achieved=10,
        p95_ms=5.0,
        errors=0,
        cpu_mean_pct=20.0,
        connections_peak_pct=10.0,
        host_cpu_pct=30.0,
        reads_per_s=0.0,
        hit_ratio=1.0,
        thresholds={},
        sustained=False,
    )
    return RampStep(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "resource"),
    [
        ({"connections_peak_pct": 95.0, "cpu_mean_pct": 95.0}, "connections"),
        ({"hit_ratio": 0.9, "cpu_mean_pct": 95.0}, "memory/cache"),
        ({"cpu_mean_pct": 85.0}, "CPU"),
        ({"host_cpu_pct": 97.0}, "host CPU"),
        ({}, "none saturated"),
    ],
)
def test_the_resource_that_ran_out_first(changes, resource):
    assert limiting_resource(step(**changes)).startswith(resource)


def sweep_result(db_class: str, p95s: list[float], meets: list[bool], rate: float | None):
    from harness.capacity.results import Saturation, SizeResult, SweepResult

    sizes = [
        SizeResult(
            size=n,
            grow_s=1.0,
            p95_ms=p95,
            qps=100.0,
            recall=0.97,
            cache_hit_rate=0.8,
            acquire_p95_ms=2.0,
            cpu_mean_pct=30.0,
            cpu_peak_pct=50.0,
            rss_peak_bytes=None,
            index_bytes=n * 2000,
            table_bytes=n * 1800,
            shared_buffers_bytes=256 * 2**20,
            instance_memory_bytes=2**30,
            reads_per_s=0.0,
            hit_ratio=1.0,
            thresholds={"vector_search.latency_ms": "PASS" if ok else "FAIL"},
            results_file="x",
        )
        for n, p95, ok in zip(SIZES[: len(p95s)], p95s, meets, strict=True)
    ]
    saturation = Saturation(size=sizes[-1].size, rate=rate, limited_by="CPU (database at 80% of its vCPUs)")
    return SweepResult(db_class, "cache.t3.micro", "full", "t0", 60.0, sizes, saturation, ["NOT EMULATED: x"], {})


def test_the_sweep_report_marks_the_knee_the_memory_crossing_and_the_headroom():
    from harness.capacity.report import sweep_markdown

    text = sweep_markdown(
        sweep_result("db.t3.micro", [3, 3.3, 3.6, 60, 200], [True] * 3 + [False] * 2, 40.0),
        100_000,
        Growth(fraction=0.1),
    )
    assert "Latency knee (p95 growing faster than the data): 400,000" in text
    # 256 MiB at 2,000 bytes per document.
    assert f"shared_buffers at about {round(256 * 2**20 / 2000):,}" in text
    crossing = round(256 * 2**20 / 2000)
    months = math.log(crossing / 100_000) / math.log(1.1)
    assert f"{months:.1f} months from 100,000 documents at 10%/month until the index outgrows shared_buffers" in text
    assert "Saturation point: 40 searches/s; ran out first: CPU" in text and "NOT EMULATED: x" in text


def test_the_class_table_recommends_from_measured_sweeps(tmp_path):
    from harness.capacity.recommend import load_capacity_model
    from harness.capacity.report import compare_classes

    micro = sweep_result("db.t3.micro", [3, 3.3, 3.6, 60, 200], [True] * 3 + [False] * 2, 40.0)
    small = sweep_result("db.t3.small", [3, 3.2, 3.4, 3.7, 4.0], [True] * 5, 35.0)
    model = load_capacity_model()
    text, rec = compare_classes([micro, small], model, Target(documents=400_000, rate_per_s=30))
    assert rec.choice == "db.t3.small" and "holds only up to 200,000" in rec.verdicts["db.t3.micro"]
    _, rec = compare_classes([micro, small], model, Target(documents=100_000, rate_per_s=30))
    # Both hold 100k; a rate measured on more data than the target is a safe bound, so the cheaper one wins.
    assert rec.choice == "db.t3.micro"
    assert "| db.t3.micro | cache.t3.micro | 200,000 | 800,000 | 40 (at 800,000) |" in text


@pytest.mark.parametrize("sizes", ["100000,50000", "0,10", "5,5", "ten"])
def test_the_cli_refuses_sizes_that_are_not_rising_positive_numbers(sizes, capsys):
    from harness.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["capacity", "run", "--sizes", sizes])
    assert exit_info.value.code == 2
    assert "sizes" in capsys.readouterr().err


def test_the_cli_wants_today_and_growth_together(capsys, tmp_path, monkeypatch):
    from harness.cli.main import main

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    assert main(["capacity", "run", "--plan", "ci", "--today", "1000"]) == 2
    assert "--today and --growth go together" in capsys.readouterr().err


def test_the_cli_says_when_no_stack_is_running(capsys, tmp_path, monkeypatch):
    from harness.cli.main import main

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    assert main(["capacity", "run", "--plan", "ci"]) == 2
    assert "no running stack" in capsys.readouterr().err


def test_the_table_command_reads_sweeps_and_prints_the_recommendation(tmp_path, capsys):
    from harness.capacity.results import write_result
    from harness.cli.main import main

    runs = []
    for result in (
        sweep_result("db.t3.micro", [3, 3.3, 60], [True, True, False], 40.0),
        sweep_result("db.t3.small", [3, 3.2, 3.4], [True] * 3, 35.0),
    ):
        directory = tmp_path / result.db_class
        directory.mkdir()
        write_result(result, directory)
        runs.append(str(directory))
    code = main(["capacity", "table", *runs, "--target-size", "200000", "--target-rate", "30", "--out", str(tmp_path)])
    assert code == 0
    assert "db.t3.small is the cheapest measured class that holds 200,000 documents" in capsys.readouterr().out
    assert (tmp_path / "capacity.png").stat().st_size > 0


def test_the_table_command_refuses_a_file_that_is_not_a_sweep(tmp_path, capsys):
    from harness.cli.main import main

    (tmp_path / "capacity.json").write_text('{"sizes": "nope"}')
    assert main(["capacity", "table", str(tmp_path)]) == 2
    assert "cannot read a capacity result" in capsys.readouterr().err


def test_the_cache_knee_is_the_first_size_whose_reads_missed_shared_buffers():
    from harness.capacity.knee import cache_knee

    assert cache_knee([(200_000, 0.75), (50_000, 0.9994), (100_000, 0.9991)]) == 200_000
    assert cache_knee([(50_000, None), (100_000, 0.995)]) is None


def test_headroom_runs_to_the_earliest_knee():
    from harness.capacity.report import Knees

    assert Knees(latency=400_000, cache=200_000, shared_buffers=131_000, instance_memory=None).headroom_limit == (
        131_000,
        "the index outgrows shared_buffers",
    )
    assert Knees(None, None, None, None).headroom_limit == (None, "no knee")


def test_build_memory_is_read_in_postgres_units_and_nonsense_is_refused():
    from harness.capacity.classes import memory_bytes

    assert memory_bytes("3GB") == 3 * 2**30 and memory_bytes("512MB") == 512 * 2**20
    with pytest.raises(CapacityInputError, match="like 512MB"):
        memory_bytes("3 GiB")


@pytest.mark.parametrize(
    ("classes", "message"),
    [((), "at least one"), (("db.t3.micro", "db.t3.micro"), "distinct"), (("db.x9.huge",), "unknown DB instance")],
)
def test_a_class_plan_refuses_what_it_cannot_restart_into(classes, message):
    from harness.capacity.classes import ClassPlan

    with pytest.raises(CapacityInputError, match=message):
        ClassPlan(classes, drained=False)


def test_each_class_is_measured_with_its_own_sizing_and_drained_when_asked():
    from harness.capacity.classes import ClassPlan
    from harness.config import Settings

    base = Settings(db_instance_class="db.t3.micro", cpu_credits="live")
    small = ClassPlan(("db.t3.micro", "db.t3.small"), drained=True).measuring(base, "db.t3.small")
    assert (small.db_instance_class, small.cpu_credits, small.state_dir) == ("db.t3.small", "drained", base.state_dir)
    assert ClassPlan(("db.t3.micro",), drained=False).measuring(base, "db.t3.micro").cpu_credits == "off"


def test_the_report_says_whether_the_sweep_ran_drained_with_the_volume_capped():
    from harness.capacity.sweep import NOT_EMULATED_DRAINED, NOT_EMULATED_IOPS, conditions

    drained = {
        "credits": {
            "mode": "drained",
            "enforced": True,
            "detail": "cpu_credits = drained: cache node and RDS in their own cgroups",
            "storage": {"type": "gp2", "allocated_gib": 20, "capped_read_iops": 100, "detail": "reads capped"},
        }
    }
    applied, missing = conditions(drained)
    assert missing == [] and "capped at 100 IOPS" in applied[1] and "drained" in applied[0]
    off = {"credits": {"mode": "off", "enforced": False, "detail": "off", "storage": {"detail": "not capped"}}}
    applied, missing = conditions(off)
    assert missing == [NOT_EMULATED_DRAINED, NOT_EMULATED_IOPS]
    # A drained run whose caps did not hold is not reported as drained.
    unenforced = {"credits": {**drained["credits"], "enforced": False, "detail": "credits NOT enforced: x"}}
    assert "NOT EMULATED: credits (credits NOT enforced: x)" in conditions(unenforced)[1]


def test_the_table_and_report_commands_take_a_classes_run_as_all_its_classes(tmp_path, capsys):
    from harness.capacity.results import write_result
    from harness.cli.main import main

    for result in (
        sweep_result("db.t3.micro", [3, 3.3, 60], [True, True, False], 40.0),
        sweep_result("db.t3.small", [3, 3.2, 3.4], [True] * 3, 35.0),
    ):
        write_result(result, tmp_path / result.db_class)
    assert main(["capacity", "table", str(tmp_path), "--target-size", "200000", "--target-rate", "30"]) == 0
    out = capsys.readouterr().out
    assert "| db.t3.micro |" in out and "| db.t3.small |" in out
    assert main(["capacity", "report", str(tmp_path)]) == 0
    assert (tmp_path / "db.t3.micro" / "capacity.md").is_file() and (tmp_path / "db.t3.small" / "capacity.md").is_file()
    assert "| db.t3.small |" in (tmp_path / "capacity-table.md").read_text()
    assert main(["capacity", "table", str(tmp_path / "empty")]) == 2
    assert "holds no capacity.json" in capsys.readouterr().err


def test_sweeps_of_one_class_run_at_different_times_join_into_one_curve():
    import dataclasses

    from harness.capacity.results import merge_results

    first = sweep_result("db.t3.micro", [3, 3.3, 3.6], [True] * 3, 40.0)
    later = sweep_result("db.t3.micro", [9, 9.9, 10.8, 60, 200], [True] * 3 + [False] * 2, 5.0)
    later = dataclasses.replace(later, started="t1", sizes=later.sizes[2:], saturation=later.saturation)
    other = dataclasses.replace(first, db_class="db.t3.small")
    merged = {r.db_class: r for r in merge_results([later, first, other])}
    micro = merged["db.t3.micro"]
    assert [s.size for s in micro.sizes] == list(SIZES)
    # Where both measured a size, the later run's figure wins; the saturation is the largest size's.
    assert [s.p95_ms for s in micro.sizes] == [3, 3.3, 10.8, 60, 200]
    assert micro.saturation is not None and micro.saturation.size == SIZES[4] and micro.saturation.rate == 5.0
    assert micro.started == "t0" and micro.wall_s == 120.0
    assert merged["db.t3.small"] == other
