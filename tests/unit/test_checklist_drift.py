"""A deployment's drift result (recorded responses of the describe calls) decides the checklist items it
reads: a drifted setting fails its item, an unread one leaves it NOT CHECKED YET, all matching passes it;
without a drift result the items keep their own status and never pass on the drift's account."""

from __future__ import annotations

import json

from test_spec_drift import LEVELS, Recorded

from harness.checklist import CheckStatus, evaluate_checklist
from harness.checklist.drift import DRIFT_ITEMS
from harness.cli.main import main
from harness.spec import load_unit_spec
from harness.spec.drift import DeploymentIds, compare_spec_to_deployment, drift_record, read_deployment
from harness.thresholds import Status, ThresholdResult, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

LAMBDA_CONFIGS = {
    f"lambda.get_function_configuration.{name}": {"MemorySize": memory, "Timeout": timeout}
    for name, memory, timeout in (("data_export", 512, 300), ("data_deletion", 256, 300), ("audit_logging", 128, 30))
}


class Deployed(Recorded):
    """The recorded account, with function configurations answered per function name."""

    def __getattr__(self, action: str):
        if self.service == "lambda" and action == "get_function_configuration":
            return lambda FunctionName: LAMBDA_CONFIGS[f"lambda.get_function_configuration.{FunctionName}"]
        return super().__getattr__(action)


def _run(extra=None, lambdas=True):
    def client(service):
        return (Deployed if lambdas else Recorded)(service, extra or {})

    rows = compare_spec_to_deployment(load_unit_spec(), read_deployment(client, DeploymentIds()), LEVELS)
    return json.loads(json.dumps(drift_record(rows)))


def _items(run):
    return {r.item.id: r.result for r in evaluate_checklist(run, [])}


def test_a_drifted_setting_fails_the_item_it_decides_and_names_the_setting():
    items = _items(_run())
    # The recorded account keeps backups 1 day (unit.yaml: 7) and its proxy does not require TLS.
    retention = items["pre.backup_validation.retention"]
    assert retention.status is CheckStatus.FAIL
    assert "DRIFT rds instance dbunit BackupRetentionPeriod: expected 7, deployed 1" in retention.evidence
    assert items["post.security_tests.encryption_in_transit"].status is CheckStatus.FAIL
    assert "RequireTLS" in items["post.security_tests.encryption_in_transit"].evidence


def test_settings_that_all_match_pass_items_the_local_unit_could_not_show():
    items = _items(_run())
    at_rest = items["post.security_tests.encryption_at_rest"]
    assert at_rest.status is CheckStatus.PASS
    assert at_rest.evidence.startswith("deployment drift (storage encryption against unit.yaml): 2 of 2 settings match")
    plan = items["pre.infrastructure_validation.terraform_plan"]
    assert plan.status is CheckStatus.PASS and "12 of 12 settings match" in plan.evidence


def test_a_setting_the_account_did_not_answer_is_never_a_pass():
    items = _items(_run(lambdas=False))
    plan = items["pre.infrastructure_validation.terraform_plan"]
    assert plan.status is CheckStatus.NOT_CHECKED_YET
    assert "NOT READ lambda data_export MemorySize" in plan.evidence


def test_alarms_decide_the_alarm_item_at_the_signed_off_levels_only():
    assert _items(_run())["post.monitoring_tests.alarms"].status is CheckStatus.NOT_CHECKED_YET  # not answered
    missing = _items(_run({"cloudwatch.describe_alarms": {"MetricAlarms": []}}))["post.monitoring_tests.alarms"]
    assert missing.status is CheckStatus.FAIL and "no such alarm" in missing.evidence
    present = [
        {"Namespace": "AWS/RDS", "MetricName": "CPUUtilization", "Threshold": level, "Dimensions": []}
        for level in LEVELS["rds.cpu_pct"]
    ] + [
        {
            "Namespace": "AWS/Lambda",
            "MetricName": "Duration",
            "Threshold": level,
            "Dimensions": [{"Name": "FunctionName", "Value": "data_export"}],
        }
        for level in LEVELS["lambda.data_export.duration_ms"]
    ]
    matched = _items(_run({"cloudwatch.describe_alarms": {"MetricAlarms": present}}))["post.monitoring_tests.alarms"]
    # Configured at the signed-off levels, but no drill tested them in this run: not a pass yet.
    assert matched.status is CheckStatus.NOT_CHECKED_YET and "4 of 4 settings match" in matched.evidence


def test_without_a_drift_result_the_items_keep_their_own_status():
    plain = _items({})
    for item_id in DRIFT_ITEMS:
        assert plain[item_id].status is not CheckStatus.PASS, item_id
        assert "deployment drift" not in plain[item_id].evidence
    assert plain["post.security_tests.encryption_at_rest"].status is CheckStatus.NOT_EMULATED
    assert plain["pre.backup_validation.retention"].status is CheckStatus.NOT_CHECKED_YET


def test_spec_drift_refuses_a_results_file_that_does_not_exist(tmp_path, capsys):
    assert main(["spec", "drift", "--results", str(tmp_path / "nope.json"), "--state-dir", str(tmp_path)]) == 2
    assert "no such results file" in capsys.readouterr().err


def test_the_runs_spec_choices_decide_the_checklist_too():
    (cost,) = [t for t in load_thresholds(DEFAULT_THRESHOLDS_FILE).thresholds if t.metric == "cost.monthly_usd"]
    # 60 USD a month: over the shipped budget of 50, within 100 when the run chose it (--use).
    judged = [ThresholdResult(cost, Status.FAIL, 60.0, 40.0, "critical", -20.0, 1, "60 USD")]

    def budget_item(run):
        (item,) = [
            r for r in evaluate_checklist(run, judged) if r.item.id == "pre.infrastructure_validation.cost_estimation"
        ]
        return item.result

    assert "against the budget of 50 USD" in budget_item({}).evidence
    assert "against the budget of 100 USD" in budget_item({"spec_use": "cost.monthly_budget_usd=100"}).evidence
