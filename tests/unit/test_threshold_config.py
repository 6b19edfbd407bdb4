"""Threshold files: the shipped defaults, validation with positions, and override layering."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.measure.metrics import REGISTRY, MetricKind
from harness.thresholds import (
    ThresholdConfigError,
    apply_override_text,
    apply_sets,
    load_thresholds,
    parse_thresholds,
)

if TYPE_CHECKING:
    from conftest import ThresholdText

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = REPO / "fixtures" / "thresholds.yaml"
SCENARIOS = REPO / "scenarios"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ThresholdConfigError) as caught:
        parse_thresholds(text, "t.yaml")
    return [str(p) for p in caught.value.problems]


# ---- the shipped defaults ---------------------------------------------------------------------

# (warning level, critical level, unit) in the metric's unit, straight from the seed document.
SEED_LEVELS = {
    "rds.cpu_pct": (70, 90, "%"),
    "rds.connections_pct": (70, 90, "%"),
    "cache.cpu_pct": (70, 90, "%"),
    "cache.hit_rate_pct": (70, 50, "%"),
    **{f"lambda.{f}.duration_ms": (180_000, 250_000, "ms") for f in ("data_export", "data_deletion", "audit_logging")},
    **{f"lambda.{f}.error_rate_pct": (5, 10, "%") for f in ("data_export", "data_deletion", "audit_logging")},
    "free_tier.rds_hours": (700, 750, "h"),
    "free_tier.elasticache_hours": (700, 750, "h"),
    "free_tier.lambda_requests_pct": (90, 100, "%"),
    "free_tier.lambda_gb_seconds_pct": (90, 100, "%"),
    "cloudwatch.custom_metrics": (None, 10, ""),
    "free_tier.cloudwatch_logs_bytes": (None, 5e9, "bytes"),
    "cost.monthly_usd": (25, 40, "USD"),
}
OURS = {
    "vector_search.latency_ms",
    "vector_search.recall_at_10",
    "proxy.acquire_ms",
    "cache.evictions",
    "credits.cache_throttled_hours",
    "credits.rds_surplus_usd",
    "cloudwatch.alarm_metrics",
    "cloudwatch.dashboards",
    *(f"lambda.{f}.throttles" for f in ("data_export", "data_deletion", "audit_logging")),
    "drill.crash.lost_writes",
    "drill.proxy.lost_writes",
    "drill.services.lost_items",
    "drill.cache.error_rate_pct",
    "drill.cache.recovery_s",
    "drill.restore.rto_s",
    "drill.network.lost_writes",
    "drill.network.blackhole_request_s",
    "drill.network.recovery_s",
    "drill.lambda.partial_exports",
}


def test_defaults_carry_every_seed_threshold_and_mark_ours() -> None:
    thresholds = load_thresholds(DEFAULTS).by_id()
    assert set(thresholds) == set(SEED_LEVELS) | OURS
    for threshold_id, (warning, critical, unit) in SEED_LEVELS.items():
        t = thresholds[threshold_id]
        assert (t.level("warning"), t.level("critical"), t.unit) == (warning, critical, unit), threshold_id
        assert not t.ours and not t.source.startswith("ours"), threshold_id
    for threshold_id in OURS:
        assert thresholds[threshold_id].ours and thresholds[threshold_id].source.startswith("ours")
    # The seed's "connections 70/90" is only meaningful as a share of max_connections.
    assert "max_connections" in thresholds["rds.connections_pct"].source
    assert thresholds["cache.hit_rate_pct"].condition.comparator == ">="


# The ResultsWriter method that records each kind of metric.
RECORDERS = {
    "record_latency": MetricKind.HISTOGRAM,
    "record_value": MetricKind.GAUGE,
    "record_rate": MetricKind.RATE,
    "record_count": MetricKind.COUNTER,
    "record_series": MetricKind.SERIES,
}


def recorded_by_scenarios() -> list[tuple[re.Pattern[str], MetricKind]]:
    """(metric-name pattern, kind) of every `results.record_*("name", ...)` call in scenarios/.

    An f-string name such as f"lambda.{function}.duration_ms" matches any one dotted segment in place of
    each placeholder.
    """
    found = []
    for path in sorted(SCENARIOS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            kind = RECORDERS.get(node.func.attr)
            name = node.args[0]
            if kind is None:
                continue
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.append((re.compile(re.escape(name.value)), kind))
            elif isinstance(name, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"[^.]+" for v in name.values]
                found.append((re.compile("".join(parts)), kind))
    return found


def test_every_metric_the_sign_off_judges_is_recorded_by_a_scenario_as_its_kind() -> None:
    # `harness signoff` runs scenarios/ and judges every threshold of the defaults; a threshold whose
    # metric no scenario records would be an ERROR on every sign-off, one recorded through the wrong
    # method is refused at record time, in the middle of a run.
    recorders = recorded_by_scenarios()

    def recorded_as(metric: str) -> set[MetricKind]:
        return {kind for pattern, kind in recorders if pattern.fullmatch(metric)}

    judged = {t.metric for t in load_thresholds(DEFAULTS).thresholds}
    assert {m: recorded_as(m) for m in judged} == {m: {REGISTRY[m].kind} for m in judged}
    # The control: Locust's metrics are judged by fixtures/thresholds-locust.yaml, not by the sign-off,
    # and no scenario records them; the scan must say so rather than match everything.
    assert recorded_as("locust.failure_rate_pct") == set()


# ---- validation --------------------------------------------------------------------------------


def test_unknown_metric_is_an_error_with_position_and_suggestion(threshold_text: ThresholdText) -> None:
    text = threshold_text.file(threshold_text.cpu.replace("rds.cpu_pct", "rds.cpu_pcnt"))
    assert problems_of(text) == [
        "t.yaml:3:13: unknown metric 'rds.cpu_pcnt' (did you mean 'rds.cpu_pct'?); use a name from "
        "harness/measure/metrics.py REGISTRY, or add a MetricSpec there"
    ]


def test_expression_error_points_at_the_character_in_the_file(threshold_text: ThresholdText) -> None:
    text = threshold_text.file(threshold_text.cpu.replace("critical: mean < 90%", 'critical: "mean => 90%"'))
    (problem,) = problems_of(text)
    # Line 5, the quoted scalar opens at column 15, the expression at 16, `=>` is its 6th character.
    assert problem.startswith("t.yaml:5:21: rds.cpu_pct critical: expected a comparator")
    assert problem.endswith("    mean => 90%\n         ^")


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("warning: mean < 70%", "warning: rate < 70%", "statistic 'rate' does not apply to rds.cpu_pct (gauge)"),
        ("warning: mean < 70%", "warning: mean < 70ms", "unit 'ms' does not fit rds.cpu_pct"),
        ("warning: mean < 70%", "warning: mean < 95%", "warning level 95% is on the wrong side of critical 90%"),
        ("warning: mean < 70%", "warning: p95 < 70%", "must test the same statistic in the same direction"),
        ("warning: mean < 70%", "warning: mean > 70%", "must test the same statistic in the same direction"),
        ("warning: mean < 70%", "warning: 70", "got the bare value 70; say which statistic it limits"),
        ("warning: mean < 70%", "warning: avg < 70%", "unknown statistic 'avg'; write 'mean' instead"),
        ('unit: "%"', "unit: ms", "unit 'ms' disagrees with the registry, which measures rds.cpu_pct in '%'"),
        ("source: Health Monitoring", "source: ''", "source must name the seed document section"),
        ("    unit:", "    ours: maybe\n    unit:", "ours must be true or false"),
        ("    unit:", "    colour: red\n    unit:", "t.yaml:6:5: unknown key 'colour'"),
        ("    unit:", "    warning: mean < 60%\n    unit:", "'warning' appears twice; keep one"),
    ],
)
def test_invalid_thresholds_are_errors(old: str, new: str, fragment: str, threshold_text: ThresholdText) -> None:
    problems = problems_of(threshold_text.file(threshold_text.cpu.replace(old, new, 1)))
    assert any(fragment in p for p in problems), problems


def test_threshold_shapes_that_cannot_be_judged(threshold_text: ThresholdText) -> None:
    cases = {
        "  - metric: cache.evictions\n    warning: count == 0ms\n    unit: none\n    source: s\n": (
            "count is a plain number; drop the unit 'ms'"
        ),
        "  - metric: cache.evictions\n    warning: count == 0\n    critical: count == 5\n    unit: none\n"
        "    source: s\n": "`==` can only express one level",
        "  - metric: cache.evictions\n    unit: none\n    source: s\n": "has neither a warning nor a critical level",
        "  - metric: vector_search.recall_curve\n    warning: value < 1\n    unit: none\n    source: s\n": (
            "drawn in the report but never judged"
        ),
        "  - metric: cache.evictions\n    source: s\n": "threshold is missing unit; add them",
    }
    for entry, fragment in cases.items():
        problems = problems_of(threshold_text.file(entry))
        assert any(fragment in p for p in problems), (entry, problems)


def test_duplicate_ids_need_a_distinct_id(threshold_text: ThresholdText) -> None:
    problems = problems_of(threshold_text.file(threshold_text.cpu, threshold_text.cpu))
    assert problems == [
        "t.yaml:8:5: a second threshold with id 'rds.cpu_pct' (first at t.yaml:3); give one of them a distinct `id:`"
    ]
    second = threshold_text.cpu.replace("warning: mean < 70%", "warning: p99 < 95%").replace("critical: mean < 90%", "")
    thresholds = parse_thresholds(
        threshold_text.file(threshold_text.cpu, second.replace("  - metric:", "  - id: rds.cpu_p99\n    metric:")), "t"
    )
    assert [t.id for t in thresholds.thresholds] == ["rds.cpu_pct", "rds.cpu_p99"]


def test_every_problem_in_a_file_is_reported_at_once(threshold_text: ThresholdText) -> None:
    text = threshold_text.file(
        threshold_text.cpu.replace("rds.cpu_pct", "nope"),
        threshold_text.cpu.replace("mean < 70%", "mean <"),
        threshold_text.cpu.replace('"%"', "ms"),
    )
    assert len(problems_of(text)) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "t.yaml: file is empty; expected `schema_version: 1` and `thresholds:`"),
        ("thresholds: [\n", "t.yaml:2:1: not valid YAML"),
        ("schema_version: 2\nthresholds: []\n", "t.yaml:1:17: schema_version is 2; this harness reads 1"),
        ("thresholds: []\n", "t.yaml:1:1: missing `schema_version: 1`; add it at the top"),
        ("schema_version: 1\n", "t.yaml: missing `thresholds:`; nothing to load"),
        ("schema_version: 1\nthresholds: {}\n", "t.yaml:2:13: thresholds must be a list"),
        ("schema_version: 1\nthreshold: []\n", "t.yaml:2:1: unknown top-level key 'threshold'"),
    ],
)
def test_file_structure_errors(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems_of(text)), problems_of(text)


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ThresholdConfigError, match=r"cannot read the file .*; check the path"):
        load_thresholds(tmp_path / "missing.yaml")


# ---- overrides ---------------------------------------------------------------------------------


def test_override_file_changes_levels_without_touching_the_defaults(tmp_path: Path) -> None:
    before = DEFAULTS.read_text()
    override = tmp_path / "ci.yaml"
    override.write_text(
        "schema_version: 1\noverrides:\n"
        "  vector_search.latency_ms:\n    warning: p95 < 80ms\n"
        "  rds.cpu_pct:\n    warning: null\n"
    )
    thresholds = load_thresholds(DEFAULTS, [override]).by_id()
    latency = thresholds["vector_search.latency_ms"]
    assert (latency.level("warning"), latency.level("critical")) == (80, 100)
    assert latency.origin.endswith(f"+ {override}:3")
    assert thresholds["rds.cpu_pct"].warning is None and thresholds["rds.cpu_pct"].level("critical") == 90
    assert thresholds["rds.connections_pct"].level("warning") == 70
    assert DEFAULTS.read_text() == before


def test_layers_apply_in_order_defaults_then_files_then_sets(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("schema_version: 1\noverrides:\n  proxy.acquire_ms:\n    warning: p95 < 30ms\n")
    second.write_text("schema_version: 1\noverrides:\n  proxy.acquire_ms:\n    warning: p95 < 40ms\n")
    assert load_thresholds(DEFAULTS, [first, second]).by_id()["proxy.acquire_ms"].level("warning") == 40
    final = load_thresholds(DEFAULTS, [first, second], ["proxy.acquire_ms:warning=p95 < 0.05s"])
    assert final.by_id()["proxy.acquire_ms"].level("warning") == 50
    assert final.sources[-1] == "--set proxy.acquire_ms:warning=p95 < 0.05s"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("  proxy.acquire:\n    warning: p95 < 5ms\n", "no threshold with id 'proxy.acquire' (did you mean"),
        ("  proxy.acquire_ms:\n    metric: rds.cpu_pct\n", "'metric' cannot be overridden"),
        ("  proxy.acquire_ms:\n    warning: p95 < 500ms\n", "on the wrong side of critical"),
        ("  proxy.acquire_ms:\n    warning: p95 < 5mss\n", "b.yaml:4:21: proxy.acquire_ms warning: unknown unit 'mss'"),
    ],
)
def test_bad_override_files(tmp_path: Path, override: str, fragment: str) -> None:
    base = load_thresholds(DEFAULTS)
    with pytest.raises(ThresholdConfigError) as caught:
        apply_override_text(base, "schema_version: 1\noverrides:\n" + override, "b.yaml")
    assert fragment in str(caught.value)


def test_set_strings() -> None:
    base = load_thresholds(DEFAULTS)
    updated = apply_sets(
        base,
        [
            "cache.evictions=count <= 100",  # a single-level threshold takes a bare ID
            "rds.cpu_pct:critical=mean < 95%",
            "vector_search.latency_ms:warning=none",
        ],
    ).by_id()
    assert str(updated["cache.evictions"].warning) == "count <= 100"
    assert updated["rds.cpu_pct"].level("critical") == 95
    assert updated["vector_search.latency_ms"].warning is None
    assert str(base.by_id()["cache.evictions"].warning) == "count == 0"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("rds.cpu_pct=mean < 80%", "rds.cpu_pct has both levels; say which one"),
        ("rds.cpu_pct:warn=mean < 80%", "level 'warn' (did you mean 'warning'?) is not warning or critical"),
        ("rds.cpu=mean < 80%", "no threshold with id 'rds.cpu'"),
        ("rds.cpu_pct", "expected ID:warning=EXPR"),
        ("rds.cpu_pct:warning=mean < 80", ""),
        (
            "rds.cpu_pct:warning=mean < 80 %%",
            "--set 'rds.cpu_pct:warning=mean < 80 %%': rds.cpu_pct warning: unknown unit",
        ),
        ("cloudwatch.custom_metrics:critical=none", "neither a warning nor a critical level"),
    ],
)
def test_bad_set_strings(raw: str, fragment: str) -> None:
    base = load_thresholds(DEFAULTS)
    if not fragment:
        apply_sets(base, [raw])  # the control: a well-formed set applies
        return
    with pytest.raises(ThresholdConfigError) as caught:
        apply_sets(base, [raw])
    assert fragment in str(caught.value)
