"""The Lambda execution-role lint: the repository's policies are clean, and each rule catches its case."""

import json

import pytest

from harness.paths import FUNCTIONS_DIR
from harness.security.iam import ALLOWED_ACTIONS, lint_policies, lint_policy


def statement(action, resource="arn:aws:s3:::dbunit-gdpr-exports/exports/*", **extra):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "S", "Effect": "Allow", "Action": action, "Resource": resource, **extra}],
    }


def test_the_repository_policies_have_no_finding():
    assert lint_policies(FUNCTIONS_DIR / "policies") == []


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (statement("s3:*"), "wildcard action 's3:*'"),
        (statement("*"), "wildcard action '*'"),
        (statement(["s3:Get*"]), "wildcard action 's3:Get*'"),
        (statement("s3:GetObject", "*"), "wildcard resource '*'"),
        (statement("s3:GetObject", "arn:aws:s3:::*"), "wildcard resource 'arn:aws:s3:::*'"),
        (statement("s3:GetObject", "arn:aws:secretsmanager:us-east-2:1:*"), "wildcard resource"),
        (statement("s3:PutBucketPolicy"), "more than the function uses"),
        (statement("s3:GetObject", []), "no Resource"),
        (
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "x"}]},
            "NotAction",
        ),
        ([], "not a policy document"),
    ],
)
def test_each_rule_names_what_it_found(document, problem):
    findings = lint_policy("p.json", document, ALLOWED_ACTIONS["data_export"])
    assert any(problem in f.problem for f in findings), findings


def test_a_deny_statement_may_use_wildcards():
    deny = {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    assert lint_policy("p.json", deny, None) == []


def test_a_function_without_a_policy_is_a_finding(tmp_path):
    (tmp_path / "audit_logging.json").write_text(json.dumps(statement("logs:PutLogEvents")))
    findings = lint_policies(tmp_path, ("audit_logging", "data_export"))
    assert [f.problem for f in findings] == ["missing: data_export has no execution-role policy"]
