"""A small lint of the Lambda execution roles' IAM policy documents (functions/policies/<function>.json).

The checklist's "IAM permissions validated", for what can be checked without an account: every statement
allows named actions (no `*`, no `service:*`, no `service:Get*`) on named resources (no bare `*`, no ARN
whose resource part is `*`), every function has a policy, and no policy grants what its function has no use
for. parliament (PyPI) was not used: it would pull its own boto3 beside the harness's pinned one; these
rules are the ones the issue asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Actions a GDPR function may be granted at most; anything else in a policy is a finding.
ALLOWED_ACTIONS: dict[str, frozenset[str]] = {
    "data_export": frozenset(
        {
            "secretsmanager:GetSecretValue",
            "s3:PutObject",
            "s3:GetObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "kms:GenerateDataKey",
            "kms:Decrypt",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        }
    ),
    "data_deletion": frozenset(
        {
            "secretsmanager:GetSecretValue",
            "s3:ListBucket",
            "s3:DeleteObject",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        }
    ),
    "audit_logging": frozenset(
        {"secretsmanager:GetSecretValue", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
    ),
}


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    statement: str
    problem: str

    def __str__(self) -> str:
        return f"{self.policy} [{self.statement}]: {self.problem}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard_resource(resource: str) -> bool:
    if resource.strip() == "*":
        return True
    parts = resource.split(":", 5)
    # arn:partition:service:region:account:resource; a resource part of "*" names everything of the service.
    return len(parts) == 6 and parts[5].strip() in ("*", "*/*")


def lint_policy(name: str, document: Any, allowed: frozenset[str] | None) -> list[PolicyFinding]:
    if not isinstance(document, dict) or not isinstance(document.get("Statement"), list | dict):
        return [PolicyFinding(name, "-", "not a policy document (an object with Statement)")]
    findings = []
    for index, statement in enumerate(_as_list(document["Statement"])):
        sid = str(statement.get("Sid", index)) if isinstance(statement, dict) else str(index)
        if not isinstance(statement, dict):
            findings.append(PolicyFinding(name, sid, "statement is not an object"))
            continue
        if "NotAction" in statement or "NotResource" in statement:
            findings.append(PolicyFinding(name, sid, "NotAction/NotResource grant everything else"))
        if statement.get("Effect") != "Allow":
            continue
        for action in map(str, _as_list(statement.get("Action", []))):
            if "*" in action:
                findings.append(PolicyFinding(name, sid, f"wildcard action {action!r}"))
            elif allowed is not None and action not in allowed:
                findings.append(PolicyFinding(name, sid, f"action {action!r} is more than the function uses"))
        resources = list(map(str, _as_list(statement.get("Resource", []))))
        if not resources:
            findings.append(PolicyFinding(name, sid, "no Resource"))
        findings += [PolicyFinding(name, sid, f"wildcard resource {r!r}") for r in resources if _wildcard_resource(r)]
    return findings


def lint_policies(directory: Path, functions: tuple[str, ...] = tuple(ALLOWED_ACTIONS)) -> list[PolicyFinding]:
    findings = []
    for function in functions:
        path = directory / f"{function}.json"
        if not path.is_file():
            findings.append(PolicyFinding(path.name, "-", f"missing: {function} has no execution-role policy"))
            continue
        try:
            document = json.loads(path.read_text())
        except ValueError as exc:
            findings.append(PolicyFinding(path.name, "-", f"not valid JSON: {exc}"))
            continue
        findings += lint_policy(path.name, document, ALLOWED_ACTIONS.get(function))
    return findings
