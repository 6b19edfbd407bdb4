"""`harness alarms`: export writes the module files, bad thresholds and an external deployment without
--external are refused before anything is written or deployed."""

from harness.cli.main import main
from harness.endpoints import save_endpoints
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE


def test_export_writes_terraform_and_cloudformation(tmp_path, capsys):
    assert main(["alarms", "export", "--format", "terraform", "--out", str(tmp_path / "tf")]) == 0
    assert (tmp_path / "tf" / "main.tf").read_text().count('resource "aws_cloudwatch_metric_alarm"') == 26
    assert main(["alarms", "export", "--format", "cloudformation", "--out", str(tmp_path / "cfn")]) == 0
    assert sorted(p.name for p in (tmp_path / "cfn").iterdir()) == ["billing-us-east-1.json", "monitoring.json"]


def test_bad_thresholds_write_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_THRESHOLDS_FILE.read_text().replace("datapoints_to_alarm: 3", "datapoints_to_alarm: 9"))
    code = main(["alarms", "export", "--format", "terraform", "--out", str(tmp_path / "out"), "--thresholds", str(bad)])
    assert code == 2
    assert "datapoints_to_alarm 9 exceeds evaluation_periods 5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_deploy_to_an_external_deployment_needs_external(tmp_path, make_endpoints, capsys):
    save_endpoints(tmp_path, make_endpoints(backend="external"))
    assert main(["alarms", "deploy", "--state-dir", str(tmp_path)]) == 2
    assert "pass --external" in capsys.readouterr().err


def test_deploy_without_a_running_stack_says_how_to_start_one(tmp_path, capsys):
    assert main(["alarms", "deploy", "--state-dir", str(tmp_path / "none")]) == 1
    assert "harness up" in capsys.readouterr().err
