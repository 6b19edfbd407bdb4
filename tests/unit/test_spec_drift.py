"""The drift check against recorded responses of the calls no local emulator answers (RDS instances and
proxies, ElastiCache clusters): it finds a drifted setting, matches the rest, and says NOT READ for a call
that failed, never MATCH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.spec import load_unit_spec
from harness.spec.drift import DeploymentIds, DriftStatus, compare_spec_to_deployment, read_deployment

RECORDED = json.loads((Path(__file__).resolve().parents[1] / "data" / "drift-responses.json").read_text())
LEVELS = {"rds.cpu_pct": [70.0, 90.0], "lambda.data_export.duration_ms": [180_000.0, 250_000.0]}


class Recorded:
    """A client whose describe calls return the recorded responses; any other call is not answered."""

    def __init__(self, service: str, extra: dict[str, Any]) -> None:
        self.service, self.extra = service, extra

    def __getattr__(self, action: str):
        def call(**_: Any) -> Any:
            key = f"{self.service}.{action}"
            if key in self.extra:
                return self.extra[key]
            if key in RECORDED:
                return RECORDED[key]
            raise ConnectionError(f"{key} is not answered here")

        return call


def _all_rows(extra: dict[str, Any] | None = None):
    deployment = read_deployment(lambda service: Recorded(service, extra or {}), DeploymentIds())
    return compare_spec_to_deployment(load_unit_spec(), deployment, LEVELS)


def _rows(extra: dict[str, Any] | None = None):
    return {(r.resource, r.setting): r for r in _all_rows(extra) if r.resource != "cloudwatch alarm"}


def test_a_drifted_setting_is_found_and_the_rest_match():
    rows = _rows()
    assert rows[("rds instance dbunit", "BackupRetentionPeriod")].status is DriftStatus.DRIFT
    assert rows[("rds instance dbunit", "BackupRetentionPeriod")].actual == 1
    assert rows[("rds proxy dbunit-proxy", "RequireTLS")].status is DriftStatus.DRIFT
    for setting in ("DBInstanceClass", "AllocatedStorage", "StorageType", "StorageEncrypted", "MultiAZ"):
        assert rows[("rds instance dbunit", setting)].status is DriftStatus.MATCH, setting
    for setting in ("CacheNodeType", "NumCacheNodes", "TransitEncryptionEnabled", "AtRestEncryptionEnabled"):
        assert rows[("cache cluster dbunit-cache", setting)].status is DriftStatus.MATCH, setting


def test_a_call_that_is_not_answered_is_not_read_never_a_match():
    rows = _rows()
    lambda_rows = [r for (resource, _), r in rows.items() if resource.startswith("lambda ")]
    assert len(lambda_rows) == 6
    assert {r.status for r in lambda_rows} == {DriftStatus.NOT_READ}
    assert "is not answered here" in str(lambda_rows[0].actual)
    alarms = [r for r in _all_rows() if r.resource == "cloudwatch alarm"]
    assert len(alarms) == 4 and {r.status for r in alarms} == {DriftStatus.NOT_READ}


def test_alarms_must_exist_at_the_signed_off_levels():
    alarms = {
        "MetricAlarms": [
            {"Namespace": "AWS/RDS", "MetricName": "CPUUtilization", "Threshold": 70.0, "Dimensions": []},
            {"Namespace": "AWS/RDS", "MetricName": "CPUUtilization", "Threshold": 95.0, "Dimensions": []},
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Duration",
                "Threshold": 180000.0,
                "Dimensions": [{"Name": "FunctionName", "Value": "data_export"}],
            },
        ]
    }
    rows = [r for r in _all_rows({"cloudwatch.describe_alarms": alarms}) if r.resource == "cloudwatch alarm"]
    by_level = {(r.setting, r.expected): r for r in rows}
    assert by_level[("AWS/RDS CPUUtilization", 70.0)].status is DriftStatus.MATCH
    # 95 deployed where 90 was signed off: drift, and the row shows what is deployed.
    assert by_level[("AWS/RDS CPUUtilization", 90.0)].status is DriftStatus.DRIFT
    assert by_level[("AWS/RDS CPUUtilization", 90.0)].actual == "70, 95"
    assert by_level[("AWS/Lambda Duration (data_export)", 180000.0)].status is DriftStatus.MATCH
    assert by_level[("AWS/Lambda Duration (data_export)", 250000.0)].actual == "180000"
