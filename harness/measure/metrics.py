"""The measurement vocabulary: units, statistics, and the registry of metrics the harness knows.

The registry is the contract between scenarios (which record metrics), thresholds (which judge them)
and the report (which draws them). A name outside it is refused at record time and at threshold-load
time, so a typo can never turn into a threshold that silently has nothing to judge. Adding a metric is
one `MetricSpec` entry.

Naming: `<service>.<measure>` with the unit as a suffix where it is not obvious (`_ms`, `_pct`,
`_bytes`); Lambda metrics are per function, `lambda.<function>.<measure>`, one per function of the
seed's compute tier.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum

from harness.sizing import LAMBDA_FUNCTIONS


class MetricKind(StrEnum):
    # Latency-like distributions, stored as HDR histograms so percentiles merge exactly.
    HISTOGRAM = "histogram"
    # Timestamped samples of a level (CPU %, connections % of max_connections, a projection).
    GAUGE = "gauge"
    # Successes over trials, recorded per interval so the report can draw it over time.
    RATE = "rate"
    # Event counts summed over writers (throttles, evictions).
    COUNTER = "counter"
    # Points with named numeric fields, for curves; drawn, never judged.
    SERIES = "series"


@dataclass(frozen=True)
class Unit:
    name: str
    family: str
    # Multiplier to the family's base unit (ms, ratio, byte, USD, hour-less count).
    factor: float


# Decimal prefixes follow SI (kB = 1000 B); binary ones are spelled KiB/MiB/GiB.
_UNIT_LIST = (
    Unit("us", "time", 1e-3),
    Unit("µs", "time", 1e-3),
    Unit("ms", "time", 1.0),
    Unit("s", "time", 1e3),
    Unit("min", "time", 60e3),
    Unit("h", "time", 3600e3),
    Unit("%", "fraction", 0.01),
    Unit("ratio", "fraction", 1.0),
    Unit("B", "bytes", 1.0),
    Unit("bytes", "bytes", 1.0),
    Unit("kB", "bytes", 1e3),
    Unit("MB", "bytes", 1e6),
    Unit("GB", "bytes", 1e9),
    Unit("KiB", "bytes", 1024.0),
    Unit("MiB", "bytes", 1024.0**2),
    Unit("GiB", "bytes", 1024.0**3),
    Unit("USD", "currency", 1.0),
)
UNITS: dict[str, Unit] = {u.name: u for u in _UNIT_LIST}
# A metric measured in plain numbers (a count of things) has no unit.
DIMENSIONLESS = ""


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between two units of one family; callers have already checked the families match."""
    return value * UNITS[from_unit].factor / UNITS[to_unit].factor


def unit_family(unit: str) -> str:
    return UNITS[unit].family if unit else DIMENSIONLESS


def suggest(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when nothing is close."""
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


STAT_NAMES = ("min", "max", "mean", "count", "rate", "value")


@dataclass(frozen=True)
class Statistic:
    """A statistic of a metric: a named one, or a percentile when `percentile` is set (name 'p')."""

    name: str
    percentile: float | None = None

    def __str__(self) -> str:
        if self.percentile is None:
            return self.name
        return f"p{self.percentile:g}"

    @property
    def family(self) -> str:
        """'p' for every percentile, else the name: what a metric kind allows."""
        return "p" if self.percentile is not None else self.name

    @property
    def dimensionless(self) -> bool:
        # A count is a number of samples or events whatever the metric measures.
        return self.name == "count"


ALLOWED_STATS: dict[MetricKind, tuple[str, ...]] = {
    MetricKind.HISTOGRAM: ("p", "min", "max", "mean", "count"),
    MetricKind.GAUGE: ("value", "p", "min", "max", "mean", "count"),
    MetricKind.RATE: ("rate", "count"),
    MetricKind.COUNTER: ("count",),
    MetricKind.SERIES: (),
}


@dataclass(frozen=True)
class SeriesPlot:
    """How the report draws a series: which point fields are the axes, and which metrics' thresholds
    belong on each axis."""

    x_field: str
    y_field: str
    x_label: str
    y_label: str
    point_label_field: str | None = None
    x_threshold_metric: str | None = None
    y_threshold_metric: str | None = None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: MetricKind
    unit: str
    # A few words for chart titles; the description says exactly what is measured.
    title: str
    description: str
    # Which way is good, for `report compare`; None when neither is (counts of work done).
    better: str | None = None
    # Metrics sharing a chart id are drawn on one chart (the three Lambda functions, say).
    chart: str | None = None
    # Fixed lines a chart needs to be read, e.g. 100 % of max_connections.
    reference_lines: tuple[tuple[float, str], ...] = ()
    plot: SeriesPlot | None = None
    # Stored HDR values are integers: value * hdr_scale (microseconds for a metric in ms).
    hdr_scale: int = 1

    @property
    def chart_id(self) -> str:
        return self.chart or self.name


def _lambda_specs(function: str) -> list[MetricSpec]:
    prefix = f"lambda.{function}"
    # fmt: off
    return [
        MetricSpec(f"{prefix}.duration_ms", MetricKind.HISTOGRAM, "ms", f"{function} duration",
                   f"{function} invocation duration (the REPORT line's Duration)",
                   better="lower", chart="lambda.duration_ms", hdr_scale=1000),
        MetricSpec(f"{prefix}.billed_duration_ms", MetricKind.HISTOGRAM, "ms", f"{function} billed duration",
                   f"{function} billed duration (the REPORT line's Billed Duration: Duration plus any Init "
                   "Duration, rounded up to 1 ms), what Lambda charges GB-seconds on",
                   better="lower", chart="lambda.billed_duration_ms", hdr_scale=1000),
        MetricSpec(f"{prefix}.error_rate_pct", MetricKind.RATE, "%", f"{function} error rate",
                   f"{function} invocations that returned an error, of all invocations",
                   better="lower", chart="lambda.error_rate_pct"),
        MetricSpec(f"{prefix}.throttles", MetricKind.COUNTER, DIMENSIONLESS, f"{function} throttles",
                   f"{function} invocations refused for lack of concurrency", better="lower"),
    ]
    # fmt: on


# fmt: off
_SPECS: list[MetricSpec] = [
    MetricSpec("rds.cpu_pct", MetricKind.GAUGE, "%", "PostgreSQL CPU",
               "PostgreSQL CPU use as % of the instance class's vCPUs, sampled over the run",
               better="lower", chart="cpu_pct"),
    MetricSpec("rds.connections_pct", MetricKind.GAUGE, "%", "PostgreSQL connections vs max_connections",
               "server connections in use as % of max_connections (100 * numbackends / max_connections)",
               better="lower", reference_lines=((100.0, "max_connections"),)),
    MetricSpec("proxy.acquire_ms", MetricKind.HISTOGRAM, "ms", "Connection acquisition through the proxy (CDF)",
               "time to obtain a usable session through the proxy (connect until the first query may run)",
               better="lower", hdr_scale=1000),
    MetricSpec("cache.cpu_pct", MetricKind.GAUGE, "%", "Redis CPU",
               "Redis CPU use as % of the node type's vCPUs, sampled over the run",
               better="lower", chart="cpu_pct"),
    MetricSpec("cache.hit_rate_pct", MetricKind.RATE, "%", "Cache hit rate over time",
               "cache reads answered from Redis, of all cache reads (keyspace_hits / (hits + misses))",
               better="higher"),
    MetricSpec("cache.evictions", MetricKind.COUNTER, DIMENSIONLESS, "Cache evictions",
               "keys Redis evicted under maxmemory during the run (evicted_keys delta)", better="lower"),
    MetricSpec("cache.used_memory_bytes", MetricKind.GAUGE, "bytes", "Redis memory used",
               "Redis used_memory, sampled over the run", better="lower"),
    MetricSpec("vector_search.latency_ms", MetricKind.HISTOGRAM, "ms", "Vector search latency (CDF)",
               "top-10 pgvector similarity query latency at the configured ef_search, through the proxy",
               better="lower", hdr_scale=1000),
    MetricSpec("vector_search.recall_at_10", MetricKind.GAUGE, "ratio", "Vector search recall@10",
               "recall@10 against exact (sequential-scan) neighbours, one sample per query or query batch",
               better="higher"),
    MetricSpec("vector_search.recall_curve", MetricKind.SERIES, DIMENSIONLESS,
               "Recall@10 against p95 latency across ef_search",
               "one point per ef_search setting, with fields ef_search, recall_at_10 and p95_ms",
               plot=SeriesPlot(x_field="p95_ms", y_field="recall_at_10", x_label="p95 latency (ms)",
                               y_label="recall@10", point_label_field="ef_search",
                               x_threshold_metric="vector_search.latency_ms",
                               y_threshold_metric="vector_search.recall_at_10")),
    MetricSpec("free_tier.rds_hours", MetricKind.GAUGE, "h", "RDS hours per month",
               "RDS instance hours per month, projected from the deployment shape (free tier: 750)",
               better="lower"),
    MetricSpec("free_tier.elasticache_hours", MetricKind.GAUGE, "h", "ElastiCache hours per month",
               "ElastiCache node hours per month, projected from the deployment shape (free tier: 750)",
               better="lower"),
    MetricSpec("free_tier.lambda_requests_pct", MetricKind.GAUGE, "%", "Lambda requests of the free tier",
               "Lambda requests per month, projected, as % of the free tier's 1,000,000", better="lower"),
    MetricSpec("free_tier.lambda_gb_seconds_pct", MetricKind.GAUGE, "%", "Lambda GB-seconds of the free tier",
               "Lambda GB-seconds per month, projected, as % of the free tier's 400,000", better="lower"),
    MetricSpec("free_tier.cloudwatch_logs_bytes", MetricKind.GAUGE, "bytes", "CloudWatch Logs per month",
               "CloudWatch Logs ingested per month, projected", better="lower"),
    MetricSpec("cloudwatch.custom_metrics", MetricKind.GAUGE, DIMENSIONLESS, "CloudWatch custom metrics",
               "custom CloudWatch metrics the unit publishes", better="lower"),
    MetricSpec("cloudwatch.alarm_metrics", MetricKind.GAUGE, DIMENSIONLESS, "CloudWatch alarm metrics",
               "metrics the deployment's alarms watch (a metric-math alarm counts each metric), from thresholds.yaml",
               better="lower"),
    MetricSpec("cloudwatch.dashboards", MetricKind.GAUGE, DIMENSIONLESS, "CloudWatch dashboards",
               "dashboards the deployment exports (the document's four)", better="lower"),
    MetricSpec("cost.monthly_usd", MetricKind.GAUGE, "USD", "Monthly cost after the free tier",
               "monthly cost once the free tier ends, projected from the deployment shape", better="lower"),
    MetricSpec("credits.cache_throttled_hours", MetricKind.GAUGE, "h", "Cache node hours throttled per day",
               "hours a day the cache node wants more than its credit baseline (Standard mode), from the modelled "
               "day: the monthly model's traffic at the CPU per request measured in the run", better="lower"),
    MetricSpec("credits.rds_surplus_usd", MetricKind.GAUGE, "USD", "RDS CPU surplus per month",
               "USD a month of surplus CPU credits RDS (Unlimited mode) is billed, from the modelled day",
               better="lower"),
]
# Measured by the scenarios for the report; no threshold judges them (stress tests go past capacity on
# purpose, sweeps explore settings other than the design point).
_SPECS += [
    MetricSpec("pool.request_ms", MetricKind.HISTOGRAM, "ms", "Request latency by way of connecting (CDF)",
               "connect (or borrow) + one indexed query + release, per mode (direct, pool, proxy) and client count",
               better="lower", hdr_scale=1000),
    MetricSpec("pool.acquire_ms", MetricKind.HISTOGRAM, "ms", "Connection acquisition by way of connecting (CDF)",
               "time to a usable connection: a new connection (direct, proxy) or a pool borrow",
               better="lower", hdr_scale=1000),
    MetricSpec("pool.throughput_rps", MetricKind.GAUGE, DIMENSIONLESS, "Requests per second by way of connecting",
               "completed requests per second, per mode and client count", better="higher"),
    MetricSpec("pool.refused", MetricKind.COUNTER, DIMENSIONLESS, "Connections refused",
               "connections PostgreSQL refused for lack of slots, per mode and client count", better="lower"),
    MetricSpec("pool.peak_connections_pct", MetricKind.GAUGE, "%", "Peak connections vs max_connections (pooling)",
               "highest client backends as % of max_connections during a pooling run",
               better="lower", reference_lines=((100.0, "max_connections"),)),
    MetricSpec("pool.storm_refused", MetricKind.COUNTER, DIMENSIONLESS, "Storm: connections refused",
               "clients refused when hundreds of short-lived clients connect at once", better="lower"),
    MetricSpec("pool.storm_wait_ms", MetricKind.HISTOGRAM, "ms", "Storm: queueing time (CDF)",
               "time a storm client waited beyond its own work (connect + queue for a server connection)",
               better="lower", hdr_scale=1000),
    MetricSpec("pool.storm_peak_connections_pct", MetricKind.GAUGE, "%", "Storm: peak connections vs max_connections",
               "highest client backends as % of max_connections during the storm",
               better="lower", reference_lines=((100.0, "max_connections"),)),
    MetricSpec("pool.recovery_s", MetricKind.GAUGE, "s", "Pool recovery after a PostgreSQL restart",
               "from the restart to the pool's first successful query", better="lower"),
    MetricSpec("alarm_drill.time_to_alarm_s", MetricKind.GAUGE, "s", "Alarm drill: breach to ALARM",
               "from the start of a real breach to the emulator's alarm state ALARM (10 s drill periods), per family",
               better="lower"),
    MetricSpec("alarm_drill.time_to_notification_s", MetricKind.GAUGE, "s", "Alarm drill: breach to SQS notification",
               "from the start of the breach to the ALARM notification on an SQS queue subscribed to the alarm's topic",
               better="lower"),
    MetricSpec("alarm_drill.time_to_ok_s", MetricKind.GAUGE, "s", "Alarm drill: recovery to OK",
               "from the end of the breach to the alarm's return to OK", better="lower"),
    MetricSpec("pool.lost_writes", MetricKind.COUNTER, DIMENSIONLESS, "Acknowledged writes lost in the restart",
               "inserts the pool reported as committed that are missing after the restart", better="lower"),
    MetricSpec("drill.services.lost_items", MetricKind.COUNTER, DIMENSIONLESS, "Drill: state lost after SIGKILLs",
               "kinds of state (tables, objects, secrets, keys, alarms, functions) that changed after every service "
               "was SIGKILLed and brought back", better="lower"),
    MetricSpec("drill.crash.recovery_s", MetricKind.GAUGE, "s", "Drill: recovery after kill -9 of the postmaster",
               "from the SIGKILL to the first write acknowledged through the proxy", better="lower"),
    MetricSpec("drill.crash.failed_requests", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes failed in a crash",
               "writes through the proxy that failed between the kill and the first success", better="lower"),
    MetricSpec("drill.crash.lost_writes", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes lost in a crash",
               "writes acknowledged before the postmaster was SIGKILLed that are missing after crash recovery",
               better="lower"),
    MetricSpec("drill.restore.rto_s", MetricKind.GAUGE, "s", "Drill: RTO of a lost instance",
               "from losing the instance to the first write acknowledged by the instance restored from backup "
               "(restore, proxy switch, validation, traffic)", better="lower"),
    MetricSpec("drill.restore.lost_writes", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes lost with the instance",
               "acknowledged writes not yet archived when the instance was lost (the RPO, in writes)", better="lower"),
    MetricSpec("drill.cache.error_rate_pct", MetricKind.GAUGE, "%", "Drill: app errors in a cache failure",
               "cache-aside reads that failed while Redis was SIGKILLed and restarted", better="lower"),
    MetricSpec("drill.cache.recovery_s", MetricKind.GAUGE, "s", "Drill: hit rate back above 70 %",
               "from Redis answering again to the first 0.5 s window with a hit rate >= 70 %, per warming",
               better="lower"),
    MetricSpec("drill.cache.hit_rate_curve", MetricKind.SERIES, DIMENSIONLESS, "Drill: hit rate after a cache restart",
               "0.5 s windows after Redis restarted empty, fields t (s), hit_rate and db_queries_per_s, per warming",
               plot=SeriesPlot(x_field="t", y_field="hit_rate", x_label="seconds after the restart",
                               y_label="hit rate", point_label_field=None)),
    MetricSpec("drill.proxy.reconnect_s", MetricKind.GAUGE, "s", "Drill: reconnect after a proxy restart",
               "from the PgBouncer restart to the first acknowledged write", better="lower"),
    MetricSpec("drill.proxy.failed_requests", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes failed, proxy restart",
               "writes that failed while the proxy restarted", better="lower"),
    MetricSpec("drill.proxy.lost_writes", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes lost in a proxy restart",
               "acknowledged writes missing after the proxy restart", better="lower"),
    MetricSpec("drill.network.lost_writes", MetricKind.COUNTER, DIMENSIONLESS, "Drill: writes lost to network faults",
               "acknowledged writes through the fault proxy missing after a blackhole of the link", better="lower"),
    MetricSpec("drill.network.blackhole_request_s", MetricKind.GAUGE, "s", "Drill: longest request in a blackhole",
               "the longest application request while the link to the proxy or Redis was silent, per link",
               better="lower"),
    MetricSpec("drill.lambda.partial_exports", MetricKind.COUNTER, DIMENSIONLESS, "Drill: partial exports",
               "objects or incomplete multipart uploads left by exports killed mid-way (timeout, out of memory), "
               "plus objects beyond one after the retry", better="lower"),
    MetricSpec("drill.network.recovery_s", MetricKind.GAUGE, "s", "Drill: recovery after a blackhole",
               "from the end of the blackhole to the first successful application request, per link",
               better="lower"),
    MetricSpec("vector_search.qps", MetricKind.GAUGE, DIMENSIONLESS, "Vector search queries per second",
               "completed top-10 searches per second, per client count", better="higher"),
    MetricSpec("vector_search.filtered_recall", MetricKind.GAUGE, "ratio", "Filtered search recall",
               "recall of category-filtered top-10 searches against exact filtered neighbours, per iterative_scan",
               better="higher"),
    MetricSpec("vector_search.filtered_rows", MetricKind.GAUGE, DIMENSIONLESS, "Filtered search rows returned",
               "mean rows a filtered top-10 search returned, per iterative_scan setting", better="higher"),
    MetricSpec("lambda.data_export.scaling", MetricKind.SERIES, DIMENSIONLESS, "data_export duration against rows",
               "warm duration of one export per user, against the rows of personal data that user has",
               plot=SeriesPlot(x_field="rows", y_field="duration_ms", x_label="rows exported",
                               y_label="warm duration (ms)")),
    MetricSpec("lambda.data_export.rows_within_warning", MetricKind.GAUGE, DIMENSIONLESS,
               "Largest export under the 180 s warning",
               "rows of personal data an export could hold and stay under 180 s at 512 MB (linear fit)",
               better="higher"),
    MetricSpec("lambda.burst_throttles", MetricKind.COUNTER, DIMENSIONLESS, "Throttles in a burst past the limit",
               "invocations refused with TooManyRequestsException when twice the concurrency limit arrive at once",
               better=None),
    MetricSpec("cache.skew_hit_rate_pct", MetricKind.RATE, "%", "Cache hit rate by Zipf skew",
               "steady-state hit rate of the cache-aside path for each key-popularity skew", better="higher"),
    MetricSpec("cache.overflow_evictions", MetricKind.COUNTER, DIMENSIONLESS, "Evictions past maxmemory",
               "keys evicted while writing more than maxmemory of values with a TTL", better=None),
    MetricSpec("cache.overflow_hit_rate_pct", MetricKind.RATE, "%", "Share still cached after overflow",
               "of a uniform sample of the written keys, those still in Redis after the overflow", better="higher"),
    # Locust runs (harness/locustusers). locust.failure_rate_pct is judged, by fixtures/thresholds-locust.yaml.
    # A team's own query mix replayed (harness/workload): per statement (label `statement`), and what RDS Proxy
    # would pin (fixtures/thresholds-workload.yaml).
    MetricSpec("workload.statement_ms", MetricKind.HISTOGRAM, "ms", "Workload replay latency per statement (CDF)",
               "each statement of the workload file, open model through the proxy, from its intended start",
               better="lower", hdr_scale=1000),
    MetricSpec("workload.error_rate_pct", MetricKind.RATE, "%", "Workload replay statements failed",
               "replayed statements that raised, of all replayed", better="lower"),
    MetricSpec("workload.pinned_calls_pct", MetricKind.GAUGE, "%", "Workload calls that pin in RDS Proxy",
               "share of the workload's calls (pg_stat_statements counts) whose statement would pin a client "
               "to one database connection in RDS Proxy", better="lower"),
    MetricSpec("locust.request_ms", MetricKind.HISTOGRAM, "ms", "Locust request latency (CDF)",
               "every request Locust counted, failed ones included, per request type and name; exact, unlike "
               "Locust's own rounded percentiles", better="lower", hdr_scale=1000),
    MetricSpec("locust.failure_rate_pct", MetricKind.RATE, "%", "Locust requests failed",
               "requests that failed for a reason no service metric counts (errors, refused connections, wrong "
               "answers), of all requests; Lambda function errors and throttles count in lambda.<function>.*",
               better="lower"),
]
# fmt: on
for _function in LAMBDA_FUNCTIONS:
    _SPECS.extend(_lambda_specs(_function))

REGISTRY: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

# Titles of charts that several metrics share; a chart of one metric takes the metric's title.
CHART_TITLES: dict[str, str] = {
    "cpu_pct": "CPU use: PostgreSQL and Redis",
    "lambda.duration_ms": "Lambda duration per function (CDF)",
    "lambda.billed_duration_ms": "Lambda billed duration per function (CDF)",
    "lambda.error_rate_pct": "Lambda error rate per function over time",
}


class UnknownMetricError(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"unknown metric {name!r}{suggest(name, list(REGISTRY))}; "
            "use a name from harness/measure/metrics.py REGISTRY, or add a MetricSpec there"
        )


def metric_spec(name: str) -> MetricSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(name) from None
