"""A capacity sweep: grow the data size by size and, at each one, measure vector search (p95, recall),
the cache path and pooling at the design concurrency, judge the thresholds, and note what memory and
reads did; then ramp an open-model request rate at one size to find the saturation point.

Each size's figures go to their own results file (`<out>/size-<N>/results.json`) and are judged by the
ordinary threshold evaluation (harness.thresholds), restricted to the metrics the step measured: a step
"meets the thresholds" when every one of them is PASS.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from harness.app.cache_aside import CacheCounters
from harness.backends.guard import require_destructive_allowed
from harness.capacity.knee import CapacityInputError
from harness.capacity.probes import (
    Acquisitions,
    IoDelta,
    K,
    cache_clients,
    connect,
    fresh_connection_clients,
    io_counters,
    memory_facts,
    search_clients,
    users_and_tenants,
)
from harness.capacity.results import RampStep, Saturation, SizeResult, SweepResult, add_ramp, write_result
from harness.config import Settings
from harness.data.app_role import app_credentials, app_endpoint, data_root
from harness.data.datasets import load_current_ground_truth
from harness.data.ground_truth import GroundTruth, RetrievedAnswers
from harness.data.grow import grow, profile_of
from harness.data.loading import current_seed
from harness.data.profiles import get_profile
from harness.data.seed import seed
from harness.endpoints import StackEndpoints
from harness.measure.load import Limits, LoadResult, run_closed, run_open
from harness.measure.results import ResultsWriter, load_results
from harness.measure.run_facts import run_facts
from harness.measure.sampling import ResourceSampler, Samples
from harness.thresholds.evaluate import Status, ThresholdResult, evaluate_threshold
from harness.thresholds.model import ThresholdSet

# The metrics a size step records and is judged on (thresholds on other metrics are not about size).
STEP_METRICS = (
    "vector_search.latency_ms",
    "vector_search.recall_at_10",
    "cache.hit_rate_pct",
    "proxy.acquire_ms",
    "rds.cpu_pct",
    "rds.connections_pct",
)
# A ramp step judges what a rate changes: search latency, server CPU and connections.
RAMP_METRICS = ("vector_search.latency_ms", "rds.cpu_pct", "rds.connections_pct")
# A step whose completed rate falls below this share of the offered one did not sustain it.
SUSTAINED_SHARE = 0.95
# The cache path's keyspace is users x queries; these bounds keep the popularity tables small.
CACHE_USERS = 2_000
CACHE_QUERIES = 100

Say = Callable[[str], None]


@dataclass(frozen=True)
class RampPlan:
    start_rate: float
    factor: float
    step_s: float
    max_steps: int
    workers: int

    def rates(self) -> list[float]:
        return [round(self.start_rate * self.factor**i, 2) for i in range(self.max_steps)]


@dataclass(frozen=True)
class SweepPlan:
    sizes: tuple[int, ...]
    profile: str
    dim: int | None
    clients: int
    search_requests: int
    cache_requests: int
    pool_requests: int
    max_duration_s: float
    growth_strategy: str
    # The open-model ramp for the saturation point, run at the last size (at every size with ramp_every);
    # None skips it.
    ramp: RampPlan | None
    ramp_every: bool = False
    # maintenance_work_mem for index builds while growing (None: the profile's); see Sweep.reach.
    build_memory: str | None = None

    def __post_init__(self) -> None:
        if not self.sizes or any(s < 1 for s in self.sizes) or list(self.sizes) != sorted(set(self.sizes)):
            raise CapacityInputError(f"sizes must be distinct positive numbers in rising order, got {self.sizes}")


# Named plans: `ci` checks the mechanics in seconds, `full` is the capacity run.
PLANS: dict[str, SweepPlan] = {
    "ci": SweepPlan(
        sizes=(3_000, 5_000),
        profile="ci",
        dim=None,
        clients=4,
        search_requests=300,
        cache_requests=600,
        pool_requests=80,
        max_duration_s=30,
        growth_strategy="auto",
        ramp=RampPlan(start_rate=20, factor=2.0, step_s=2.0, max_steps=3, workers=4),
    ),
    "full": SweepPlan(
        sizes=(50_000, 100_000, 200_000, 400_000, 800_000),
        profile="default",
        dim=None,
        clients=8,
        search_requests=4_000,
        cache_requests=6_000,
        pool_requests=500,
        max_duration_s=300,
        growth_strategy="auto",
        ramp=RampPlan(start_rate=10, factor=1.5, step_s=15.0, max_steps=12, workers=16),
    ),
}


@dataclass(frozen=True)
class Reached:
    """How a sweep brought the data to a size: seconds, what was done, and whether an index was built."""

    seconds: float
    detail: str
    index_built: bool


NOT_EMULATED_IOPS = (
    "NOT EMULATED: storage IOPS. gp2's 100-IOPS baseline is not applied here; reads past shared_buffers are "
    "counted (pg_stat_database), but they are served by this machine's page cache and disk, so latency past "
    "the knee is far better here than on RDS (measured on gp2 with a cold cache: 300 queries in 302 s)."
)
NOT_EMULATED_DRAINED = (
    "NOT EMULATED: a drained burstable instance. The sweep does not spend the CPU credits first, so it answers "
    "for the first minutes of load, not for hours of it (`--drained` runs it drained)."
)


def conditions(facts: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(what the stack applied, what it did not emulate) for CPU credits and storage, from the stack's facts
    as read back from the kernel when it started."""
    credits = facts.get("credits") or {}
    storage = credits.get("storage") or {}
    mode = credits.get("mode", "off")
    applied = [f"CPU credits: {credits.get('detail', 'unknown (the stack recorded no credit facts)')}"]
    missing: list[str] = []
    if mode == "drained" and credits.get("enforced"):
        applied[0] += (
            " (drained: the cache node held at its baseline CPU, RDS Unlimited at full CPU billing surplus, "
            "PostgreSQL started with a cold page cache)"
        )
    else:
        missing.append(NOT_EMULATED_DRAINED if mode == "off" else f"NOT EMULATED: credits ({credits.get('detail')})")
    if storage.get("capped_read_iops"):
        applied.append(
            f"storage: {storage.get('type')} {storage.get('allocated_gib')} GiB capped at "
            f"{storage['capped_read_iops']} IOPS (its baseline, no burst credits); {storage.get('detail', '')}"
        )
    else:
        applied.append(f"storage: {storage.get('detail', 'not capped')}")
        missing.append(NOT_EMULATED_IOPS)
    return applied, missing


def _judge(path: Path, thresholds: ThresholdSet, metrics: Sequence[str]) -> dict[str, str]:
    results = load_results(path)
    judged: dict[str, ThresholdResult] = {
        t.id: evaluate_threshold(t, results) for t in thresholds.thresholds if t.metric in metrics
    }
    return {name: str(r.status) for name, r in judged.items()}


def _mean(samples: Samples, key: str) -> float | None:
    values = [v for _, v in samples.series(key)]
    return sum(values) / len(values) if values else None


def _peak(samples: Samples, key: str) -> float | None:
    values = [v for _, v in samples.series(key)]
    return max(values) if values else None


class Sweep:
    def __init__(
        self, stack: StackEndpoints, settings: Settings, plan: SweepPlan, thresholds: ThresholdSet, out: Path, say: Say
    ) -> None:
        self.stack, self.settings, self.plan, self.thresholds, self.out, self.say = (
            stack,
            settings,
            plan,
            thresholds,
            out,
            say,
        )
        self.data = data_root(settings.state_dir)
        self.role, self.password = app_credentials(stack, settings.state_dir)

    # --- data ------------------------------------------------------------------------------

    def reach(self, size: int) -> Reached:
        """Bring the database to `size` documents of the plan's profile: grow when it holds a smaller set of
        the same data, else seed."""
        began = time.perf_counter()
        base = get_profile(self.plan.profile, dim=self.plan.dim)
        state = current_seed(self.stack.direct)
        if state is not None and state.params.get("source", {}).get("source") == "generated":
            held = profile_of(state)
            same_data = dataclasses.replace(held, vectors=base.vectors, k=base.k, name=base.name) == base
            if same_data and held.vectors <= size:
                report = grow(
                    self.stack.direct,
                    size,
                    self.data,
                    app_role=self.role,
                    strategy=self.plan.growth_strategy,
                    progress=True,
                    build_memory=self.plan.build_memory,
                )
                self.say(report.summary())
                built = not report.skipped and report.strategy == "rebuild"
                return Reached(time.perf_counter() - began, self._built(report.summary(), built), built)
        require_destructive_allowed(self.stack, "reseeding for a capacity sweep", self.settings)
        report_seed = seed(
            self.stack.direct,
            base.with_overrides(vectors=size),
            self.data,
            self.password,
            app_role=self.role,
            build_memory=self.plan.build_memory,
        )
        self.say(report_seed.summary())
        built = not report_seed.skipped
        return Reached(time.perf_counter() - began, self._built(report_seed.summary(), built), built)

    def _built(self, summary: str, index_built: bool) -> str:
        if not index_built:
            return summary
        memory = self.plan.build_memory or get_profile(self.plan.profile, dim=self.plan.dim).index.build_memory
        return f"{summary}; index built at maintenance_work_mem={memory}"

    # --- one size --------------------------------------------------------------------------

    def measure(self, size: int, grow_s: float, grow_detail: str = "") -> SizeResult:
        plan, stack = self.plan, self.stack
        app = app_endpoint(stack, self.settings.state_dir)
        truth: GroundTruth = load_current_ground_truth(stack.direct, self.data)
        queries = np.asarray(truth.queries)
        path = self.out / f"size-{size}" / "results.json"
        results = ResultsWriter.open(path, run={**run_facts(stack), "capacity_size": size})
        limits = Limits(duration_s=plan.max_duration_s, max_requests=plan.search_requests)
        with connect(stack.direct) as admin:
            # Warm the caches as a running application would have: one pass over the queries, not measured.
            run_closed(
                search_clients(app, queries, RetrievedAnswers(K)),
                plan.clients,
                Limits(plan.max_duration_s, len(queries)),
            )
            before = io_counters(admin)
            answers = RetrievedAnswers(K)
            with ResourceSampler(stack, interval_s=0.5).running() as samples:
                search = run_closed(
                    search_clients(app, queries, answers), plan.clients, limits, label=f"search @{size}"
                )
            io = IoDelta.between(before, io_counters(admin))
            memory = memory_facts(admin)
            users, tenants = users_and_tenants(admin, CACHE_USERS)
        self._check(search, "vector search")
        recall = answers.recall(truth.ids)
        labels = {"clients": plan.clients}
        results.record_latency("vector_search.latency_ms", search.latency, labels)
        results.record_value("vector_search.recall_at_10", recall, labels)
        for t, value in samples.series("postgres.cpu_pct"):
            results.record_value("rds.cpu_pct", value, {"scenario": "capacity"}, t=t)
        for t, value in samples.series("pg.connections_pct"):
            results.record_value("rds.connections_pct", value, {"scenario": "capacity"}, t=t)

        hit_rate = self._cache(app, users, tenants, queries[:CACHE_QUERIES], results)
        acquisitions = Acquisitions()
        pool = run_closed(
            fresh_connection_clients(app, acquisitions),
            plan.clients,
            Limits(plan.max_duration_s, plan.pool_requests),
            label=f"proxy @{size}",
        )
        self._check(pool, "connections through the proxy")
        results.record_latency("proxy.acquire_ms", acquisitions.histogram, labels)

        verdicts = _judge(path, self.thresholds, STEP_METRICS)
        result = SizeResult(
            size=size,
            grow_s=grow_s,
            p95_ms=search.percentile_ms(95),
            qps=search.throughput,
            recall=recall,
            cache_hit_rate=hit_rate,
            acquire_p95_ms=acquisitions.histogram.get_value_at_percentile(95) / 1000,
            cpu_mean_pct=_mean(samples, "postgres.cpu_pct"),
            cpu_peak_pct=_peak(samples, "postgres.cpu_pct"),
            rss_peak_bytes=_peak(samples, "postgres.memory_bytes"),
            index_bytes=memory.index_bytes,
            table_bytes=memory.table_bytes,
            shared_buffers_bytes=memory.shared_buffers_bytes,
            instance_memory_bytes=stack.facts.get("postgres", {}).get("memory_bytes"),
            reads_per_s=io.reads_per_s,
            hit_ratio=io.hit_ratio,
            thresholds=verdicts,
            results_file=str(path),
            host_load=os.getloadavg()[0],
            grow_detail=grow_detail,
        )
        self.say(
            f"size {size:,}: p95 {result.p95_ms:.2f} ms, {result.qps:.0f} qps, recall@10 {recall:.3f}, "
            f"index {memory.index_bytes / 2**20:.0f} MiB vs shared_buffers {memory.shared_buffers_bytes / 2**20:.0f} "
            f"MiB, {io.reads_per_s:.0f} reads/s past shared_buffers; thresholds "
            + ", ".join(f"{k} {v}" for k, v in verdicts.items())
        )
        return result

    def _cache(
        self, app: Any, users: np.ndarray, tenants: np.ndarray, queries: np.ndarray, results: ResultsWriter
    ) -> float | None:
        if self.stack.backend == "external" and not self.settings.allow_destructive:
            self.say("cache path skipped: it writes keys into an external deployment's cache (allow_destructive)")
            return None
        warm = CacheCounters()
        run_closed(
            cache_clients(self.stack, app, users, tenants, queries, warm),
            self.plan.clients,
            Limits(self.plan.max_duration_s, max(1, self.plan.cache_requests // 5)),
        )
        counters = CacheCounters()
        result = run_closed(
            cache_clients(self.stack, app, users, tenants, queries, counters),
            self.plan.clients,
            Limits(self.plan.max_duration_s, self.plan.cache_requests),
            label="cache",
        )
        self._check(result, "the cache path")
        results.record_rate("cache.hit_rate_pct", counters.hits, counters.hits + counters.misses)
        return counters.hit_rate

    @staticmethod
    def _check(result: LoadResult, what: str) -> None:
        if result.ok == 0:
            raise CapacityInputError(f"{what}: no request succeeded ({'; '.join(result.error_samples)})")

    # --- saturation ------------------------------------------------------------------------

    def saturate(self, size: int) -> Saturation:
        ramp = self.plan.ramp
        assert ramp is not None
        app = app_endpoint(self.stack, self.settings.state_dir)
        queries = np.asarray(load_current_ground_truth(self.stack.direct, self.data).queries)
        saturation = Saturation(size=size, rate=None, limited_by=None)
        with connect(self.stack.direct) as admin:
            for rate in ramp.rates():
                path = self.out / f"saturation-{size}" / f"rate-{rate:g}" / "results.json"
                results = ResultsWriter.open(path, run={**run_facts(self.stack), "capacity_size": size})
                before = io_counters(admin)
                psutil.cpu_percent(None)
                with ResourceSampler(self.stack, interval_s=0.5).running() as samples:
                    load = run_open(
                        search_clients(app, queries, RetrievedAnswers(K)),
                        rate,
                        Limits(ramp.step_s, max(1, int(rate * ramp.step_s))),
                        workers=ramp.workers,
                        label=f"ramp {rate:g}/s",
                    )
                host_cpu = psutil.cpu_percent(None)
                io = IoDelta.between(before, io_counters(admin))
                if load.ok:
                    results.record_latency("vector_search.latency_ms", load.latency, {"rate": rate})
                for t, value in samples.series("postgres.cpu_pct"):
                    results.record_value("rds.cpu_pct", value, {"scenario": "capacity"}, t=t)
                for t, value in samples.series("pg.connections_pct"):
                    results.record_value("rds.connections_pct", value, {"scenario": "capacity"}, t=t)
                verdicts = _judge(path, self.thresholds, RAMP_METRICS)
                achieved = load.ok / max(load.elapsed_s, 1e-6)
                sustained = (
                    load.errors == 0
                    and achieved >= SUSTAINED_SHARE * rate
                    and bool(verdicts)
                    and all(v == Status.PASS for v in verdicts.values())
                )
                step = RampStep(
                    rate=rate,
                    achieved=achieved,
                    p95_ms=load.percentile_ms(95) if load.ok else None,
                    errors=load.errors,
                    cpu_mean_pct=_mean(samples, "postgres.cpu_pct"),
                    connections_peak_pct=_peak(samples, "pg.connections_pct"),
                    host_cpu_pct=host_cpu,
                    reads_per_s=io.reads_per_s,
                    hit_ratio=io.hit_ratio,
                    thresholds=verdicts,
                    sustained=sustained,
                )
                saturation.steps.append(step)
                self.say(
                    f"ramp @{size:,}: {rate:g}/s offered, {achieved:.1f}/s done, p95 "
                    f"{'-' if step.p95_ms is None else f'{step.p95_ms:.1f} ms'}, db cpu "
                    f"{'-' if step.cpu_mean_pct is None else f'{step.cpu_mean_pct:.0f}%'}, host cpu {host_cpu:.0f}%: "
                    f"{'sustained' if sustained else 'NOT sustained'}"
                )
                if not sustained:
                    saturation.limited_by = limiting_resource(step)
                    break
                saturation.rate = rate
        return saturation


# CPU past the threshold's warning level (70 %) is the instance running out of CPU.
CPU_LIMIT_PCT = 70.0
CONNECTIONS_LIMIT_PCT = 90.0
# Below this share of block reads served from shared_buffers, the working set no longer fits.
CACHE_HIT_LIMIT = 0.99
HOST_CPU_LIMIT_PCT = 90.0


def limiting_resource(step: RampStep) -> str:
    """The resource that ran out first at a rate the unit did not sustain, by the order a DBA would look."""
    if step.connections_peak_pct is not None and step.connections_peak_pct >= CONNECTIONS_LIMIT_PCT:
        return "connections"
    if step.hit_ratio is not None and step.hit_ratio < CACHE_HIT_LIMIT:
        return f"memory/cache ({100 * step.hit_ratio:.1f}% of block reads from shared_buffers; IOPS NOT EMULATED)"
    if step.cpu_mean_pct is not None and step.cpu_mean_pct >= CPU_LIMIT_PCT:
        return f"CPU (database at {step.cpu_mean_pct:.0f}% of its vCPUs)"
    if step.host_cpu_pct >= HOST_CPU_LIMIT_PCT:
        return f"host CPU ({step.host_cpu_pct:.0f}%: load generator and server share this machine's cores)"
    return "none saturated: latency rose from queueing"


def run_sweep(
    stack: StackEndpoints,
    settings: Settings,
    plan: SweepPlan,
    plan_name: str,
    thresholds: ThresholdSet,
    out: Path,
    say: Say,
) -> SweepResult:
    began = time.perf_counter()
    sweep = Sweep(stack, settings, plan, thresholds, out, say)
    result = new_result(stack, plan_name)
    out.mkdir(parents=True, exist_ok=True)
    for size in plan.sizes:
        reached = sweep.reach(size)
        result.sizes.append(sweep.measure(size, reached.seconds, reached.detail))
        if plan.ramp is not None and (plan.ramp_every or size == plan.sizes[-1]):
            add_ramp(result, sweep.saturate(size))
        result.wall_s = time.perf_counter() - began
        write_result(result, out)
    return result


def new_result(stack: StackEndpoints, plan_name: str) -> SweepResult:
    facts = stack.facts
    applied, missing = conditions(facts)
    return SweepResult(
        db_class=str(facts.get("postgres", {}).get("instance_class", "unknown")),
        cache_node=str(facts.get("redis", {}).get("node_type", "unknown")),
        plan=plan_name,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        wall_s=0.0,
        sizes=[],
        saturation=None,
        not_emulated=missing,
        run=run_facts(stack),
        conditions=applied,
    )
