"""The spec drift check: read a real deployment read-only and compare it with unit.yaml and the signed-off
alarm levels. Only describe/get calls are made (describe-db-instances, describe-db-proxies,
describe-cache-clusters, get-function-configuration, describe-alarms); a call the account (or an
emulator) does not answer is reported as NOT READ, never as a match.

deployment = read_deployment(client_for, ids)      # client_for("rds") -> a boto3 client
for row in compare_spec_to_deployment(spec, deployment, alarm_levels): print(row.line())
results.update_run(drift_record(rows))             # where the checklist items the rows decide read them
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.spec.model import Scalar, UnitSpec

ClientFor = Callable[[str], Any]
# Where a run's results file keeps a drift result (run.spec_drift).
RUN_KEY = "spec_drift"

# CloudWatch alarm for each judged metric: (namespace, MetricName). Levels come from the thresholds the
# sign-off judged (fixtures/thresholds.yaml), passed in by the caller.
ALARM_METRICS: dict[str, tuple[str, str]] = {
    "rds.cpu_pct": ("AWS/RDS", "CPUUtilization"),
    "cache.cpu_pct": ("AWS/ElastiCache", "CPUUtilization"),
    "cache.hit_rate_pct": ("AWS/ElastiCache", "CacheHitRate"),
    "lambda.data_export.duration_ms": ("AWS/Lambda", "Duration"),
    "lambda.data_deletion.duration_ms": ("AWS/Lambda", "Duration"),
    "lambda.audit_logging.duration_ms": ("AWS/Lambda", "Duration"),
}


class DriftStatus(StrEnum):
    MATCH = "MATCH"
    DRIFT = "DRIFT"
    NOT_READ = "NOT READ"


@dataclass(frozen=True)
class DeploymentIds:
    db_instance: str = "dbunit"
    db_proxy: str = "dbunit-proxy"
    cache_cluster: str = "dbunit-cache"
    # Spec function name -> the deployed function's name.
    functions: Mapping[str, str] = field(
        default_factory=lambda: {f: f for f in ("data_export", "data_deletion", "audit_logging")}
    )


@dataclass
class Deployment:
    """What the describe calls returned, by call; `errors` holds the calls that were not answered."""

    responses: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftRow:
    status: DriftStatus
    resource: str
    setting: str
    expected: Scalar | None
    actual: Any
    source: str

    def line(self) -> str:
        return (
            f"{self.status.value:<9} {self.resource} {self.setting}: expected {self.expected}, "
            f"deployed {self.actual} ({self.source})"
        )

    def as_json(self) -> dict[str, Any]:
        """For the results file (run.spec_drift.rows), where the checklist reads it."""
        actual = (
            self.actual
            if isinstance(self.actual, str | int | float | bool) or self.actual is None
            else str(self.actual)
        )
        return {
            "status": self.status.value,
            "resource": self.resource,
            "setting": self.setting,
            "expected": self.expected,
            "actual": actual,
            "source": self.source,
        }


def _call(deployment: Deployment, key: str, action: Callable[[], Any]) -> None:
    try:
        deployment.responses[key] = action()
    except Exception as exc:  # botocore raises ClientError, EndpointConnectionError, NoCredentials alike
        deployment.errors[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def read_deployment(client_for: ClientFor, ids: DeploymentIds) -> Deployment:
    """Every describe call, each on its own: one unanswered call does not hide the others."""
    deployment = Deployment()

    def client(service: str) -> Any:
        return client_for(service)

    _call(
        deployment,
        "rds.describe_db_instances",
        lambda: client("rds").describe_db_instances(DBInstanceIdentifier=ids.db_instance),
    )
    _call(deployment, "rds.describe_db_proxies", lambda: client("rds").describe_db_proxies(DBProxyName=ids.db_proxy))
    _call(
        deployment,
        "elasticache.describe_cache_clusters",
        lambda: client("elasticache").describe_cache_clusters(CacheClusterId=ids.cache_cluster),
    )
    for spec_name, deployed in ids.functions.items():
        _call(deployment, f"lambda.get_function_configuration.{spec_name}", _function_configuration(client, deployed))
    _call(deployment, "cloudwatch.describe_alarms", lambda: _all_alarms(client("cloudwatch")))
    return deployment


def check_drift(
    spec: UnitSpec, client_for: ClientFor, alarm_levels: Mapping[str, Sequence[float]], ids: DeploymentIds
) -> list[DriftRow]:
    """The read-only drift check of the deployment `client_for` reaches, against the spec and the alarm levels."""
    return compare_spec_to_deployment(spec, read_deployment(client_for, ids), alarm_levels, ids)


def drift_record(rows: Sequence[DriftRow]) -> dict[str, object]:
    """The run facts a drift result is kept as (run.spec_drift), where the checklist items it decides read it."""
    return {RUN_KEY: {"rows": [row.as_json() for row in rows]}}


def _function_configuration(client: ClientFor, name: str) -> Callable[[], Any]:
    return lambda: client("lambda").get_function_configuration(FunctionName=name)


def _all_alarms(cloudwatch: Any) -> dict[str, Any]:
    alarms: list[Any] = []
    token = None
    for _ in range(50):  # bounded: 50 pages of 100 alarms is far beyond one unit
        page = cloudwatch.describe_alarms(**({"NextToken": token} if token else {}))
        alarms.extend(page.get("MetricAlarms", []))
        token = page.get("NextToken")
        if not token:
            break
    return {"MetricAlarms": alarms}


def _first(response: Any, key: str) -> Mapping[str, Any] | None:
    items = response.get(key) if isinstance(response, Mapping) else None
    return items[0] if items else None


def compare_spec_to_deployment(
    spec: UnitSpec,
    deployment: Deployment,
    alarm_levels: Mapping[str, Sequence[float]],
    ids: DeploymentIds | None = None,
) -> list[DriftRow]:
    ids = ids or DeploymentIds()
    rows: list[DriftRow] = []

    def check(call: str, resource: str, item: Mapping[str, Any] | None, setting: str, fact: str) -> None:
        expected = spec.value(fact)
        if item is None:
            reason = deployment.errors.get(call, "no such resource in the response")
            rows.append(DriftRow(DriftStatus.NOT_READ, resource, setting, expected, reason, f"unit.yaml {fact}"))
            return
        actual = item.get(setting)
        status = DriftStatus.MATCH if actual == expected else DriftStatus.DRIFT
        rows.append(DriftRow(status, resource, setting, expected, actual, f"unit.yaml {fact}"))

    db = _first(deployment.responses.get("rds.describe_db_instances"), "DBInstances")
    where = f"rds instance {ids.db_instance}"
    for setting, fact in (
        ("DBInstanceClass", "db.instance_class"),
        ("AllocatedStorage", "db.allocated_storage_gb"),
        ("StorageType", "db.storage_type"),
        ("StorageEncrypted", "db.storage_encrypted"),
        ("BackupRetentionPeriod", "db.backup_retention_days"),
        ("MultiAZ", "db.multi_az"),
    ):
        check("rds.describe_db_instances", where, db, setting, fact)
    proxy = _first(deployment.responses.get("rds.describe_db_proxies"), "DBProxies")
    check("rds.describe_db_proxies", f"rds proxy {ids.db_proxy}", proxy, "RequireTLS", "tls.required")
    cache = _first(deployment.responses.get("elasticache.describe_cache_clusters"), "CacheClusters")
    where = f"cache cluster {ids.cache_cluster}"
    for setting, fact in (
        ("CacheNodeType", "cache.node_type"),
        ("NumCacheNodes", "cache.num_nodes"),
        ("TransitEncryptionEnabled", "tls.required"),
        ("AtRestEncryptionEnabled", "db.storage_encrypted"),
    ):
        check("elasticache.describe_cache_clusters", where, cache, setting, fact)
    for spec_name, deployed in ids.functions.items():
        call = f"lambda.get_function_configuration.{spec_name}"
        config = deployment.responses.get(call)
        for setting, fact in (
            ("MemorySize", f"lambda.{spec_name}.memory_mb"),
            ("Timeout", f"lambda.{spec_name}.timeout_s"),
        ):
            check(call, f"lambda {deployed}", config, setting, fact)
    rows.extend(_compare_alarms(deployment, alarm_levels, ids))
    return rows


def _compare_alarms(
    deployment: Deployment, alarm_levels: Mapping[str, Sequence[float]], ids: DeploymentIds
) -> list[DriftRow]:
    rows = []
    response = deployment.responses.get("cloudwatch.describe_alarms")
    alarms = response.get("MetricAlarms", []) if isinstance(response, Mapping) else None
    for metric, levels in alarm_levels.items():
        if metric not in ALARM_METRICS:
            continue
        namespace, name = ALARM_METRICS[metric]
        function = metric.split(".")[1] if metric.startswith("lambda.") else None
        for level in levels:
            setting = f"{namespace} {name}" + (f" ({function})" if function else "")
            if alarms is None:
                reason = deployment.errors.get("cloudwatch.describe_alarms", "not read")
                rows.append(
                    DriftRow(DriftStatus.NOT_READ, "cloudwatch alarm", setting, level, reason, f"thresholds {metric}")
                )
                continue
            deployed_fn = ids.functions.get(function, function) if function else None
            found = [
                a
                for a in alarms
                if a.get("Namespace") == namespace
                and a.get("MetricName") == name
                and (deployed_fn is None or {"Name": "FunctionName", "Value": deployed_fn} in a.get("Dimensions", []))
            ]
            levels_found = sorted(float(a.get("Threshold", "nan")) for a in found)
            status = DriftStatus.MATCH if any(abs(x - level) < 1e-9 for x in levels_found) else DriftStatus.DRIFT
            actual = ", ".join(f"{x:g}" for x in levels_found) if levels_found else "no such alarm"
            rows.append(DriftRow(status, "cloudwatch alarm", setting, level, actual, f"thresholds {metric}"))
    return rows
