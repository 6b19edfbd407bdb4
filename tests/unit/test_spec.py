"""fixtures/unit.yaml against the design document: each contradiction the document holds is found, an
open one fails the lint, and the values the harness repeats elsewhere agree with the spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.app.gdpr_deploy import TIMEOUTS_S
from harness.cli.main import main
from harness.config import resolve_settings
from harness.paths import FIXTURES_DIR
from harness.sizing import SEED_LAMBDA_MEMORY_MB
from harness.spec import DEFAULT_SPEC_FILE, FindingKind, SpecError, lint, load_spec, read_document, unresolved

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
    return read_document(load_spec().document)


def _without_use(tmp_path: Path, fact: str) -> Path:
    raw = yaml.safe_load(DEFAULT_SPEC_FILE.read_text())
    raw["facts"][fact].pop("use")
    raw["facts"][fact].pop("why")
    raw["document"] = str(load_spec().document)
    path = tmp_path / "unit.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_spec_resolves_every_contradiction_and_every_quote_is_in_the_document(document):
    findings = lint(load_spec(), document)
    assert unresolved(findings) == []
    assert {f.fact for f in findings if f.kind is FindingKind.RESOLVED} == set(CONTRADICTIONS)


@pytest.mark.parametrize("fact", sorted(CONTRADICTIONS))
def test_each_contradiction_is_listed_with_both_sides_and_the_value_used(fact, document):
    (finding,) = [f for f in lint(load_spec(), document) if f.fact == fact]
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
    changed.write_text(load_spec().document.read_text().replace("budget_limit: 100", "budget_limit: 50"))
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
        load_spec(path)


def test_a_bad_use_value_exits_2_with_the_type_named(capsys):
    assert main(["spec", "lint", "--use", "db.allocated_storage_gb=lots"]) == 2
    assert "takes a int value" in capsys.readouterr().err


def test_values_the_harness_repeats_elsewhere_agree_with_the_spec(tmp_path):
    spec = load_spec()
    for function, memory in SEED_LAMBDA_MEMORY_MB.items():
        assert spec.value(f"lambda.{function}.memory_mb") == memory
    for function, timeout in TIMEOUTS_S.items():
        assert spec.value(f"lambda.{function}.timeout_s") == timeout
    defaults = resolve_settings({}, environ={}, cwd=tmp_path)
    assert spec.value("region") == defaults.region
    assert spec.value("db.instance_class") == defaults.db_instance_class
    assert spec.value("cache.node_type") == defaults.cache_node_type
    model = yaml.safe_load((FIXTURES_DIR / "monthly_model.yaml").read_text())
    for name, limit in model["free_tier"].items():
        assert spec.value(f"free_tier.{name}") == limit
    assert spec.value("db.allocated_storage_gb") == model["deployment"]["rds_storage_gb"]
    thresholds = {t["metric"]: t for t in yaml.safe_load((FIXTURES_DIR / "thresholds.yaml").read_text())["thresholds"]}
    cost = thresholds["cost.monthly_usd"]
    assert cost["warning"].endswith(f"{spec.value('cost.budget_warning_usd')}USD")
    assert cost["critical"].endswith(f"{spec.value('cost.budget_critical_usd')}USD")
