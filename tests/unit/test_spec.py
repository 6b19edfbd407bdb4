"""fixtures/unit.yaml against the design document: each contradiction the document holds is found, an
open one fails the lint, and what the harness applies (sizing, the Lambda deployment, the thresholds' levels,
the cost model) is read from the spec, so a choice made with --use / HARNESS_SPEC_USE reaches all of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.app.gdpr_deploy import definitions
from harness.cli.main import main
from harness.config import ConfigError, resolve_settings
from harness.model.projection import load_model
from harness.sizing import unit_sizing
from harness.spec import DEFAULT_SPEC_FILE, FindingKind, SpecError, lint, load_unit_spec, read_document, unresolved
from harness.thresholds import ThresholdConfigError, load_thresholds, parse_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE

# Each contradiction of the document (issue 14), as the fact that holds it and a phrase its finding shows.
CONTRADICTIONS = {
    "region": ("us-east-2", "us-east-1"),
    "cache.node_type": ("cache.t2.micro", "cache.t3.micro"),
    "network.nat_gateway": ("Not required", "NAT Gateway provisioned", "aws_nat_gateway", "check_nat_gateway_status"),
    "network.client_cidr": ("10.0.0.0/16", "172.31.0.0/16", "do not overlap"),
    "cost.monthly_budget_usd": ("budget_limit: 100", "monthly_limit: 50"),
    "backup.cross_region": ("Single-region deployment", "Cross-region backup enabled"),
}


@pytest.fixture(scope="module")
def document():
    return read_document(load_unit_spec().document)


def _without_use(tmp_path: Path, fact: str) -> Path:
    raw = yaml.safe_load(DEFAULT_SPEC_FILE.read_text())
    raw["facts"][fact].pop("use")
    raw["facts"][fact].pop("why")
    raw["document"] = str(load_unit_spec().document)
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_spec_resolves_every_contradiction_and_every_quote_is_in_the_document(document):
    findings = lint(load_unit_spec(), document)
    assert unresolved(findings) == []
    assert {f.fact for f in findings if f.kind is FindingKind.RESOLVED} == set(CONTRADICTIONS)


@pytest.mark.parametrize("fact", sorted(CONTRADICTIONS))
def test_each_contradiction_is_listed_with_both_sides_and_the_value_used(fact, document):
    (finding,) = [f for f in lint(load_unit_spec(), document) if f.fact == fact]
    assert finding.kind is FindingKind.RESOLVED
    for phrase in CONTRADICTIONS[fact]:
        assert phrase in finding.message
    assert "The harness uses" in finding.message


@pytest.mark.parametrize("fact", sorted(CONTRADICTIONS))
def test_lint_exits_non_zero_when_the_spec_leaves_a_contradiction_open(fact, tmp_path, capsys):
    code = main(["spec", "lint", "--spec", str(_without_use(tmp_path, fact))])
    out = capsys.readouterr().out
    assert code == 1
    assert f"CONTRADICTION   {fact}:" in out
    assert f"--use {fact}=VALUE" in out


def test_a_command_line_choice_resolves_an_open_contradiction(tmp_path, capsys):
    path = _without_use(tmp_path, "region")
    assert main(["spec", "lint", "--spec", str(path), "--use", "region=us-east-1"]) == 0
    out = capsys.readouterr().out
    assert "RESOLVED        region:" in out and "uses us-east-1 (--use on the command line)" in out


def test_a_quote_the_document_no_longer_holds_fails_the_lint(tmp_path, capsys):
    changed = tmp_path / "design.md"
    changed.write_text(load_unit_spec().document.read_text().replace("budget_limit: 100", "budget_limit: 50"))
    assert main(["spec", "lint", "--document", str(changed)]) == 1
    assert 'NOT IN DOCUMENT cost.monthly_budget_usd: "budget_limit: 100  # USD per month" is not in section' in (
        capsys.readouterr().out
    )


def test_the_shipped_spec_lints_clean_from_the_command_line(capsys):
    assert main(["spec", "lint"]) == 0
    assert "6 contradictions in the document (6 resolved by the spec, 0 open)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["facts"]["region"].pop("why"), "`use` needs a `why`"),
        (lambda raw: raw["facts"]["db.storage_type"].pop("use"), "names no value"),
        (lambda raw: raw["facts"]["network.client_cidr"].update(use="not-a-net"), "not a network"),
        (lambda raw: raw["facts"]["region"].update(colour="red"), "unknown field"),
        (lambda raw: raw.update(schema_version=9), "schema_version must be 1"),
    ],
)
def test_a_malformed_spec_is_refused_with_the_field_named(edit, message, tmp_path):
    raw = yaml.safe_load(DEFAULT_SPEC_FILE.read_text())
    edit(raw)
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=message):
        load_unit_spec(path)


def test_a_bad_use_value_exits_2_with_the_type_named(capsys):
    assert main(["spec", "lint", "--use", "db.allocated_storage_gb=lots"]) == 2
    assert "takes a int value" in capsys.readouterr().err


def _cost_threshold(facts):
    (cost,) = [
        t
        for t in load_thresholds(DEFAULT_THRESHOLDS_FILE, unit_facts=facts).thresholds
        if t.metric == "cost.monthly_usd"
    ]
    return cost


def test_the_unit_the_harness_applies_is_the_spec_as_shipped(tmp_path):
    settings = resolve_settings({}, environ={}, cwd=tmp_path)
    spec = load_unit_spec()
    assert settings.region == spec.value("region")
    assert settings.db_instance_class == spec.value("db.instance_class")
    assert settings.cache_node_type == spec.value("cache.node_type")
    assert settings.storage_type == spec.value("db.storage_type")
    assert settings.allocated_storage_gib == spec.value("db.allocated_storage_gb")
    for definition in definitions(unit=settings.unit):
        assert definition.memory_mb == spec.value(f"lambda.{definition.name}.memory_mb")
        assert definition.timeout_s == spec.value(f"lambda.{definition.name}.timeout_s")
    model = load_model(unit=settings.unit)
    for name, limit in model.free_tier.items():
        assert limit == spec.value(f"free_tier.{name}")
    assert model.rds_storage_gb == spec.value("db.allocated_storage_gb")
    cost = _cost_threshold(settings.unit.facts)
    assert "(monthly_limit 50; warning 25, critical 40)" in cost.source
    assert (cost.level("warning"), cost.level("critical")) == (25, 40)


def test_a_choice_made_for_the_run_reaches_sizing_the_functions_the_cost_model_and_the_thresholds(tmp_path):
    uses = (
        "db.instance_class=db.t3.small,lambda.data_export.memory_mb=1024,lambda.audit_logging.timeout_s=60,"
        "free_tier.lambda_gb_seconds=200000,db.allocated_storage_gb=40,cost.budget_critical_usd=45"
    )
    settings = resolve_settings({}, environ={"HARNESS_SPEC_USE": uses}, cwd=tmp_path)
    assert settings.db_instance_class == "db.t3.small"
    assert settings.allocated_storage_gib == 40
    assert set(settings.unit.overridden) == {
        "cost.budget_critical_usd",
        "db.instance_class",
        "db.allocated_storage_gb",
        "lambda.data_export.memory_mb",
        "lambda.audit_logging.timeout_s",
        "free_tier.lambda_gb_seconds",
    }
    sizing = unit_sizing(settings.db_instance_class, settings.cache_node_type, settings.unit.lambda_memory_mb)
    assert sizing.postgres.memory_bytes == 2 * 1024**3
    assert sizing.lambda_memory_mb["data_export"] == 1024
    deployed = {d.name: d for d in definitions(unit=settings.unit)}
    assert deployed["data_export"].memory_mb == 1024 and deployed["audit_logging"].timeout_s == 60
    model = load_model(unit=settings.unit)
    assert model.free_tier["lambda_gb_seconds"] == 200000 and model.rds_storage_gb == 40
    assert model.lambda_memory_mb["data_export"] == 1024
    assert _cost_threshold(settings.unit.facts).level("critical") == 45


def test_a_setting_given_explicitly_wins_over_the_spec(tmp_path):
    settings = resolve_settings({}, environ={"HARNESS_DB_INSTANCE_CLASS": "db.t3.medium"}, cwd=tmp_path)
    assert settings.db_instance_class == "db.t3.medium"
    assert settings.unit.db_instance_class == "db.t3.micro"


def test_a_spec_file_named_for_the_run_is_the_one_applied(tmp_path):
    raw = yaml.safe_load(DEFAULT_SPEC_FILE.read_text())
    raw["facts"]["lambda.data_deletion.memory_mb"]["claims"][0]["value"] = 384
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(raw))
    settings = resolve_settings({}, environ={"HARNESS_SPEC_FILE": str(path)}, cwd=tmp_path)
    assert settings.unit.lambda_memory_mb["data_deletion"] == 384
    assert settings.unit.spec_file == path


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HARNESS_SPEC_USE": "db.instance_class"}, "write FACT=VALUE"),
        ({"HARNESS_SPEC_USE": "lambda.data_export.memory_mb=lots"}, "takes a int value"),
        ({"HARNESS_SPEC_USE": "no.such.fact=1"}, "no fact 'no.such.fact'"),
        ({"HARNESS_SPEC_FILE": "/nonexistent/unit.yaml"}, "does not exist"),
    ],
)
def test_a_bad_spec_choice_is_refused_with_the_setting_named(environ, message, tmp_path):
    with pytest.raises(ConfigError, match="HARNESS_SPEC_USE") as raised:
        resolve_settings({}, environ=environ, cwd=tmp_path)
    assert message in str(raised.value)


def test_a_threshold_citing_a_fact_the_spec_lacks_is_refused_with_its_line():
    text = "schema_version: 1\nthresholds:\n  - metric: cost.monthly_usd\n    critical: value < {unit:cost.nope}USD\n"
    with pytest.raises(ThresholdConfigError, match=r"t.yaml:4.*\{unit:cost.nope\}: no such fact"):
        parse_thresholds(text, "t.yaml")
