"""Fixtures shared by the scenarios: the run's results file, the scenario size, seeded data.

Scenarios run against whatever stack the `stack` fixture (harness's pytest plugin) yields, and append
their measurements to one results file: HARNESS_RESULTS when `harness signoff` runs them, otherwise a
fresh file under reports/scenarios-<time>/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from harness.backup.unit import after_seed
from harness.config import Settings
from harness.data.app_role import app_credentials, app_endpoint, data_root
from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import GroundTruth
from harness.data.loading import current_seed
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.endpoints import PostgresEndpoint, StackEndpoints
from harness.measure.load import Limits, Precision, RatePrecision
from harness.measure.results import ResultsWriter
from harness.measure.run_facts import run_facts
from harness.monitoring.alarms import AlarmDefinition, alarm_definitions
from harness.monitoring.dashboards import FUNCTIONS, dashboard_bodies
from harness.monitoring.deploy import clients, deploy, emulator_alarm_record
from harness.monitoring.evidence import (
    FACT,
    alarms_evidence,
    dashboards_evidence,
    logs_evidence,
    metrics_evidence,
)
from harness.monitoring.publish import AwsMetricPublisher
from harness.signoff.progress import PLANNED_PROPERTY, TIME_CAP_PROPERTY
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE
from harness.workload.target import CacheRead, VectorTarget, load_cache_reads, load_vector_target


@dataclass(frozen=True)
class ScenarioSize:
    """Every knob a scenario reads; `ci` finishes in minutes, `signoff` is a real run."""

    name: str
    seed_profile: str
    # Connection pooling.
    pool_clients: tuple[int, ...]
    pool_requests_per_client: int
    # Client counts up to this one are the design load at which proxy.acquire_ms is judged.
    acquire_design_clients: int
    storm_clients: int
    storm_hold_s: float
    # Vector search.
    search_concurrency: tuple[int, ...]
    search_queries: int
    ef_search: int
    ef_sweep: tuple[int, ...]
    filtered_queries: int
    # Cache.
    cache_skews: tuple[float, ...]
    cache_skew: float
    cache_requests: int
    cache_warmup_requests: int
    # Steady reads per point of the hit-rate-by-skew curve (each after its own warm-up); the design skew's
    # judged hit rate always takes cache_requests. None: cache_requests.
    cache_curve_requests: int | None
    cache_overflow_bytes: int
    # Bounds every load loop obeys whatever the size.
    max_duration_s: float
    # A latency step stops once its p95 is known to within this fraction (half its 95 % interval), after
    # at least latency_min_requests; None runs every step to its request cap.
    latency_precision: float | None = None
    latency_min_requests: int = 400
    # The cache's steady loops stop once the hit rate is known to within this (None: at their caps).
    hit_rate_precision: RatePrecision | None = None
    # The Lambda duration drill's level: None drills the production level (180 s per invocation, so the drill
    # takes over three minutes); a lower level lets CI drill the same alarm in seconds (the report says so).
    duration_drill_level_ms: float | None = None
    # Invocations of each GDPR function its error rate is judged over. With none failing, 73 put the 95 % Wilson
    # interval's top under the 5 % warning; fewer leave the error rate PASS "not conclusive".
    lambda_invocations: int = 0

    def search_limits(self, max_requests: int) -> Limits:
        precision = None
        if self.latency_precision is not None:
            precision = Precision(95, self.latency_precision, min_requests=self.latency_min_requests)
        return Limits(duration_s=self.max_duration_s, max_requests=max_requests, precision=precision)

    def acquire_precision(self) -> Precision | None:
        """The pooling loops stop once the acquisition p95 is known to the latency precision."""
        if self.latency_precision is None:
            return None
        return Precision(95, self.latency_precision, min_requests=self.latency_min_requests)


# The hit rate's levels are 20 points apart (70 % and 50 %): a point either side decides it.
DEFAULT_HIT_RATE_PRECISION = RatePrecision(1.0, min_trials=5000)

SIZES: dict[str, ScenarioSize] = {
    "ci": ScenarioSize(
        name="ci",
        seed_profile="ci",
        pool_clients=(1, 8, 32, 150),
        pool_requests_per_client=10,
        acquire_design_clients=8,
        storm_clients=200,
        storm_hold_s=0.3,
        search_concurrency=(1, 4),
        search_queries=400,
        ef_search=40,
        ef_sweep=(10, 20, 40, 80, 160),
        filtered_queries=20,
        cache_skews=(0.6, 1.0, 1.4),
        cache_skew=1.0,
        cache_requests=6_000,
        cache_warmup_requests=1_000,
        cache_curve_requests=None,
        cache_overflow_bytes=450 * 2**20,
        max_duration_s=60,
        duration_drill_level_ms=2_000.0,
    ),
    "signoff": ScenarioSize(
        name="signoff",
        seed_profile="default",
        pool_clients=(1, 10, 50, 100, 200),
        pool_requests_per_client=50,
        acquire_design_clients=10,
        storm_clients=500,
        storm_hold_s=0.5,
        search_concurrency=(1, 2, 4, 8),
        search_queries=4_000,
        ef_search=40,
        ef_sweep=(10, 20, 40, 80, 160, 320),
        filtered_queries=100,
        cache_skews=(0.6, 0.8, 1.0, 1.2, 1.4),
        cache_skew=1.0,
        cache_requests=60_000,
        cache_warmup_requests=10_000,
        # A third of the design step's reads: the curve's points are compared with each other, all measured
        # alike, and 20,000 reads put each within +/-0.7 points (95 %), in well under half the steps' time.
        cache_curve_requests=20_000,
        cache_overflow_bytes=600 * 2**20,
        max_duration_s=300,
        latency_precision=0.05,
        # Off: a cache's hit rate is not stationary while its long tail fills, so a figure known to +/-1 point
        # after 5,000 reads is not the figure of the step (measured: 100 % early-stopped vs ~60 % run to the cap,
        # and the skew check failed). HARNESS_LATENCY_PRECISION=<fraction> still turns it on.
        hit_rate_precision=None,
        lambda_invocations=75,
    ),
}


# Set by `harness signoff --drained` for its second pass (harness/signoff/drained.py).
ENV_SCENARIO_PASS = "HARNESS_SCENARIO_PASS"
ENV_STEP_CAP_S = "HARNESS_STEP_CAP_S"


def _drained_pass(chosen: ScenarioSize) -> ScenarioSize:
    """The drained pass: every load step capped in time (a drained unit can take seconds per query), and
    pooling only up to the design concurrency."""
    cap = os.environ.get(ENV_STEP_CAP_S)
    if cap is not None:
        try:
            chosen = replace(chosen, max_duration_s=min(chosen.max_duration_s, float(cap)))
        except ValueError:
            raise pytest.UsageError(f"{ENV_STEP_CAP_S}={cap!r}; seconds, such as 60") from None
    if os.environ.get(ENV_SCENARIO_PASS) == "drained":
        design = tuple(c for c in chosen.pool_clients if c <= chosen.acquire_design_clients)
        chosen = replace(chosen, pool_clients=design or chosen.pool_clients[:1])
    return chosen


@pytest.fixture(scope="session")
def size() -> ScenarioSize:
    return chosen_size()


def chosen_size() -> ScenarioSize:
    name = os.environ.get("HARNESS_SCENARIO_SIZE", "ci")
    try:
        chosen = SIZES[name]
    except KeyError:
        raise pytest.UsageError(f"HARNESS_SCENARIO_SIZE={name!r}; choose one of {', '.join(SIZES)}") from None
    chosen = _drained_pass(chosen)
    # HARNESS_LATENCY_PRECISION=off runs every latency and hit-rate step to its cap (to compare against early
    # stopping); a fraction (0.05) sets the precision a latency step stops at, and turns on the hit rate's.
    precision = os.environ.get("HARNESS_LATENCY_PRECISION")
    if precision is None:
        return chosen
    if precision == "off":
        return replace(chosen, latency_precision=None, hit_rate_precision=None)
    try:
        return replace(
            chosen,
            latency_precision=float(precision),
            hit_rate_precision=chosen.hit_rate_precision or DEFAULT_HIT_RATE_PRECISION,
        )
    except ValueError:
        raise pytest.UsageError(f"HARNESS_LATENCY_PRECISION={precision!r}; a fraction such as 0.05, or off") from None


@pytest.fixture(scope="session")
def results(stack: StackEndpoints, size: ScenarioSize) -> ResultsWriter:
    path = os.environ.get("HARNESS_RESULTS")
    if not path:
        path = str(Path("reports") / f"scenarios-{time.strftime('%Y%m%d-%H%M%S')}" / "results.json")
    return ResultsWriter.open(
        path,
        run={**run_facts(stack, Path.cwd()), "scenario_size": size.name},
    )


DRILLS_FILE = "test_alarm_drills.py"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "load_loops(count): the step runs count(size) load loops, each capped at the size's max_duration_s; "
        "the sign-off's progress line bounds and estimates the step's time from it",
    )


# Each step's seconds in a reference sign-off of each size: what a first run's estimate of time left expects.
STEP_PLAN_FILE = Path(__file__).with_name("step_plan.yaml")


def plan_key(item: pytest.Item) -> str:
    """A step's name in the plan: its file and test (parameters included), wherever the scenarios live."""
    return f"{item.path.name}::{item.name}"


def planned_times(size_name: str) -> dict[str, float]:
    if not STEP_PLAN_FILE.is_file():
        return {}  # scenarios copied without their plan: the progress line estimates from the caps
    plan = yaml.safe_load(STEP_PLAN_FILE.read_text()) or {}
    return {str(step): float(seconds) for step, seconds in (plan.get(size_name) or {}).items()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Alarm drills last: their deliberate breaches reach the production alarms on the emulator too (it
    ignores dimensions and periods), so the emulator's record for the cross-check is taken before them.
    Each step carries, for the progress line, its planned time and, with load loops, its cap by the size's
    limits."""
    items.sort(key=lambda item: item.path.name == DRILLS_FILE)
    try:
        chosen = chosen_size()
    except pytest.UsageError:
        return  # the size fixture reports it
    planned = planned_times(chosen.name)
    for item in items:
        if plan_key(item) in planned:
            item.user_properties.append((PLANNED_PROPERTY, planned[plan_key(item)]))
        marker = item.get_closest_marker("load_loops")
        if marker is not None:
            item.user_properties.append((TIME_CAP_PROPERTY, marker.args[0](chosen) * chosen.max_duration_s))


class CloudWatchSession:
    """The session's publisher; once, the emulator's alarm record for the sign-off's cross-check; and what the
    checklist and the report's dashboards read (harness/monitoring/evidence.py)."""

    def __init__(
        self, stack: StackEndpoints, results: ResultsWriter, alarms: list[AlarmDefinition], dashboards: dict
    ) -> None:
        self.stack = stack
        self.results = results
        self.names = [a.name for a in alarms]
        self.dashboards = dashboards
        self.started = time.time()
        self.publisher = AwsMetricPublisher(stack)
        self.recorded = False
        cloudwatch, _ = clients(stack.aws)
        results.update_run({FACT: {"alarms": alarms_evidence(cloudwatch, alarms)}})

    def record_series(self) -> None:
        """The published metrics and each dashboard widget's datapoints over the session, read back."""
        cloudwatch, _ = clients(self.stack.aws)
        end = time.time()
        self.results.update_run(
            {
                FACT: {
                    "metrics": metrics_evidence(cloudwatch, self.started, end, FUNCTIONS),
                    "dashboards": dashboards_evidence(cloudwatch, self.dashboards, self.started, end),
                    "logs": logs_evidence(self.stack.aws.client("logs"), self.started, end, FUNCTIONS),
                }
            }
        )

    def record_emulator(self) -> None:
        if not self.recorded:
            record = emulator_alarm_record(self.stack.aws, self.names, self.started)
            self.results.update_run({"cloudwatch_emulator": record})
            self.recorded = True


@pytest.fixture(scope="session")
def cloudwatch_session(stack: StackEndpoints, results: ResultsWriter) -> Iterator[CloudWatchSession | None]:
    """Puts the thresholds' alarms and dashboards on the stack's emulator. None on an external deployment:
    there AWS emits the metrics itself (and refuses PutMetricData into AWS/ namespaces), and alarms are
    deployed only by an explicit `harness alarms deploy --external`."""
    if stack.backend == "external":
        yield None
        return
    alarms = alarm_definitions(
        load_thresholds(DEFAULT_THRESHOLDS_FILE),
        db_instance_class=stack.facts.get("postgres", {}).get("instance_class", "db.t3.micro"),
    )
    dashboards = dashboard_bodies(alarms, stack.aws.region)
    deploy(stack.aws, alarms, dashboards)
    session = CloudWatchSession(stack, results, alarms, dashboards)
    yield session
    session.record_emulator()
    session.record_series()


@pytest.fixture(scope="session")
def cloudwatch(cloudwatch_session: CloudWatchSession | None) -> AwsMetricPublisher | None:
    """The sampler listener that publishes AWS/RDS and AWS/ElastiCache metrics while scenarios sample."""
    return None if cloudwatch_session is None else cloudwatch_session.publisher


@dataclass(frozen=True)
class SeededData:
    app: PostgresEndpoint
    app_direct: PostgresEndpoint
    ground_truth: GroundTruth
    profile: str
    # The table and column the vector scenarios query (HARNESS_WORKLOAD's vector_search, else documents).
    target: VectorTarget
    # The reads the cache scenario caches (the workload file's cache section); () is the built-in application's.
    cache_reads: tuple[CacheRead, ...] = ()


@pytest.fixture(scope="session")
def seeded(stack: StackEndpoints, harness_settings: Settings, size: ScenarioSize, results: ResultsWriter) -> SeededData:
    """The data in the database, or the size's seed profile when it holds none (with the automated backup
    every fresh seed makes), and the application's endpoints. Data already loaded (by `make up` or `harness
    signoff`) is used as it is: replacing a 100k-vector seed with a small one for a quick run would cost the
    next full run its data."""
    data = data_root(harness_settings.state_dir)
    state = current_seed(stack.direct)
    if state is None:
        _, password = app_credentials(stack, harness_settings.state_dir)
        seed(stack.direct, get_profile(size.seed_profile), data, password)
        after_seed(harness_settings, stack, report=print)
        state = current_seed(stack.direct)
    results.update_run({"data_profile": state.profile, "seed": {"fingerprint": state.fingerprint}})
    target = load_vector_target(harness_settings.workload)
    return SeededData(
        app=app_endpoint(stack, harness_settings.state_dir),
        app_direct=app_endpoint(stack, harness_settings.state_dir, via_proxy=False),
        ground_truth=load_current_ground_truth(stack.direct, data, target.table, target.column),
        profile=state.profile,
        target=target,
        cache_reads=load_cache_reads(harness_settings.workload),
    )
