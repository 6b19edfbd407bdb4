"""The Terraform and CloudFormation exports: a golden file for review, a real HCL2 parse, `terraform fmt`
changing nothing, cfn-lint against AWS's resource schemas, and the parsed output carrying the same alarms
as the definitions."""

import json
import os
import shutil
import subprocess

import hcl2
import pytest
from cfnlint.api import ManualArgs, lint

from harness.monitoring.alarms import alarm_definitions
from harness.monitoring.dashboards import DASHBOARDS, dashboard_bodies
from harness.monitoring.export import cloudformation, terraform, write_export
from harness.paths import REPO_ROOT
from harness.thresholds import load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

GOLDEN = REPO_ROOT / "tests" / "unit" / "golden" / "monitoring.tf"


@pytest.fixture(scope="module")
def alarms():
    return alarm_definitions(load_thresholds(DEFAULT_THRESHOLDS_FILE))


@pytest.fixture(scope="module")
def dashboards(alarms):
    return dashboard_bodies(alarms, "us-east-2")


def test_the_terraform_export_matches_the_reviewed_golden_file(alarms, dashboards):
    text = terraform(alarms, dashboards)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "the Terraform export changed; review the diff and regenerate with UPDATE_GOLDEN=1 pytest "
        "tests/unit/test_monitoring_export.py"
    )


def test_the_terraform_export_parses_as_hcl2_with_every_alarm_topic_and_dashboard(alarms, dashboards):
    parsed = hcl2.loads(terraform(alarms, dashboards))
    resources: dict[str, dict] = {}
    # python-hcl2 8 keeps the quotes of block labels and string values.
    for block in parsed["resource"]:
        for kind, named in block.items():
            resources.setdefault(kind.strip('"'), {}).update({k.strip('"'): v for k, v in named.items()})
    alarm_names = {body["alarm_name"].strip('"') for body in resources["aws_cloudwatch_metric_alarm"].values()}
    assert alarm_names == {a.name for a in alarms}
    assert {b["dashboard_name"].strip('"') for b in resources["aws_cloudwatch_dashboard"].values()} == {
        f"dbunit-{d}" for d in DASHBOARDS
    }
    assert {"alarms_warning", "alarms_critical"} <= set(resources["aws_sns_topic"])
    cpu = resources["aws_cloudwatch_metric_alarm"]["rds_cpu_pct_warning"]
    assert (cpu["threshold"], cpu["evaluation_periods"], cpu["datapoints_to_alarm"]) == (70, 5, 3)


def _terraform_fmt_check(directory):
    """`terraform fmt -check -diff` in directory: its exit code and diff. fmt needs no provider."""
    terraform_bin = shutil.which("terraform")
    if terraform_bin is None:
        pytest.skip("terraform is not on PATH (CI machines have it): the fmt check needs its binary")
    completed = subprocess.run(
        [terraform_bin, "fmt", "-check", "-diff", "-no-color"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    return completed.returncode, completed.stdout


def test_terraform_fmt_changes_nothing_in_the_export(tmp_path, alarms, dashboards):
    write_export("terraform", tmp_path, alarms, dashboards)
    code, diff = _terraform_fmt_check(tmp_path)
    assert code == 0, f"terraform fmt would rewrite the export:\n{diff}"


def test_terraform_fmt_check_catches_a_misaligned_attribute(tmp_path, alarms, dashboards):
    """The fmt test above could fail: an unaligned `=` in a dashboard body is reported."""
    text = terraform(alarms, dashboards).replace("        height = 6\n", "        height  = 6\n", 1)
    (tmp_path / "main.tf").write_text(text)
    code, diff = _terraform_fmt_check(tmp_path)
    assert code != 0 and "height" in diff


def test_a_broken_terraform_text_does_not_parse():
    """The parse test above could fail: an unbalanced block is refused."""
    with pytest.raises(Exception):  # noqa: B017 - the parser raises its own lark errors
        hcl2.loads('resource "aws_sns_topic" "x" {\n  name = "a"\n')


def test_the_cloudformation_export_validates_against_the_resource_schemas(alarms, dashboards):
    templates = cloudformation(alarms, dashboards)
    assert set(templates) == {"monitoring.json", "billing-us-east-1.json"}
    for name, template in templates.items():
        region = "us-east-1" if "billing" in name else "us-east-2"
        problems = lint(json.dumps(template), config=ManualArgs(regions=[region]))
        assert not problems, f"{name}: {[str(p) for p in problems]}"
    alarm_names = {
        r["Properties"]["AlarmName"]
        for t in templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarm_names == {a.name for a in alarms}


def test_cfn_lint_refuses_an_alarm_cloudformation_would_refuse(alarms, dashboards):
    template = cloudformation(alarms, dashboards)["monitoring.json"]
    alarm = next(r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    alarm["Properties"]["ComparisonOperator"] = "Above"
    assert lint(json.dumps(template), config=ManualArgs(regions=["us-east-2"]))


def test_export_writes_the_module_files(tmp_path, alarms, dashboards):
    assert [p.name for p in write_export("terraform", tmp_path / "tf", alarms, dashboards)] == ["main.tf"]
    written = write_export("cloudformation", tmp_path / "cfn", alarms, dashboards)
    assert sorted(p.name for p in written) == ["billing-us-east-1.json", "monitoring.json"]
