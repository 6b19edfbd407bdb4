"""The checks that decide checklist items, by id. Each is a function of the run (CheckContext); wiring a
new one is one line: `CHECKS["alarms.configured"] = my_check`, then name it in harness/checklist/items.py.

Checks that need the running stack (`live.*`) run during `harness signoff` (harness/checklist/probes.py)
and are recorded in the results file; here they are read back, so a report re-rendered later from
results.json shows the same statuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.checklist.model import CheckContext, CheckResult, CheckStatus
from harness.spec import FindingKind
from harness.thresholds import Status, ThresholdResult

Check = Callable[[CheckContext], CheckResult]

# Why the local unit cannot show these; each names what would (the drift check on a real deployment,
# or the pipeline).
NOT_EMULATED_REASONS: dict[str, str] = {
    "terraform": "the local unit is built from harness/sizing.py, not Terraform; "
    "review `terraform plan` in the pipeline",
    "security_scan": "no infrastructure code is scanned locally; the pipeline's security_scan step does it",
    "quotas": "AWS service quotas do not exist locally; check them with `aws service-quotas` on the account",
    "iam": "the local Lambda runtime and the AWS emulator accept any credentials: there is no IAM to validate",
    "security_groups": "there is no VPC locally; every service binds 127.0.0.1 instead (see the loopback check)",
    "subnets": "there is no VPC locally, so no subnets; unit.yaml records the document's default VPC",
    "route_tables": "there is no VPC locally, so no route tables",
    "encryption_at_rest": "the local data directory is not encrypted; on AWS the drift check reads "
    "StorageEncrypted (unit.yaml db.storage_encrypted)",
}


def _not_emulated(reason: str) -> Check:
    def check(ctx: CheckContext) -> CheckResult:
        return CheckResult(CheckStatus.NOT_EMULATED, reason)

    return check


def _figure(r: ThresholdResult) -> str:
    if r.status is Status.ERROR:
        return f"{r.threshold.id} not judged ({r.message})"
    if r.status is Status.NOT_EMULATED:
        return f"{r.threshold.id} NOT EMULATED ({r.message})"
    unit = f" {r.threshold.unit}" if r.threshold.unit and r.threshold.unit != "none" else ""
    n = "" if r.sample_size is None else f", N={r.sample_size:,}"
    return f"{r.threshold.id} {r.threshold.condition.statistic} = {r.measured:.4g}{unit}{n}: {r.status.value}"


def judge_thresholds(results: Sequence[ThresholdResult], what: str) -> CheckResult:
    """The worst of the thresholds' statuses; a threshold that could not be judged fails the item. NOT
    EMULATED ones take no part, and an item whose thresholds are all NOT EMULATED is NOT EMULATED."""
    if not results:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, f"no threshold on {what} was evaluated in this run")
    judged = [r for r in results if r.status is not Status.NOT_EMULATED]
    if not judged:
        return CheckResult(CheckStatus.NOT_EMULATED, "; ".join(_figure(r) for r in results))
    statuses = {r.status for r in judged}
    if Status.ERROR in statuses or Status.FAIL in statuses:
        status = CheckStatus.FAIL
    elif Status.WARN in statuses:
        status = CheckStatus.WARN
    else:
        status = CheckStatus.PASS
    return CheckResult(status, "; ".join(_figure(r) for r in results))


def _thresholds(match: Callable[[str], bool], what: str, scenario: str | None = None) -> Check:
    def check(ctx: CheckContext) -> CheckResult:
        result = judge_thresholds([r for r in ctx.thresholds if match(r.threshold.metric)], what)
        failed = _failed_scenario_checks(ctx, scenario) if scenario else []
        if failed and result.status is not CheckStatus.NOT_CHECKED_YET:
            return CheckResult(CheckStatus.FAIL, f"scenario checks failed: {', '.join(failed)}; {result.evidence}")
        return result

    return check


def _failed_scenario_checks(ctx: CheckContext, scenario: str) -> list[str]:
    facts = ctx.run.get("scenario_checks")
    if not isinstance(facts, dict):
        return []
    names = [*facts.get("failed", []), *facts.get("errors", [])]
    return [str(n) for n in names if scenario in str(n)]


def _recorded(check_id: str) -> Check:
    def check(ctx: CheckContext) -> CheckResult:
        found = ctx.recorded(check_id)
        if found is None:
            return CheckResult(
                CheckStatus.NOT_CHECKED_YET,
                "not recorded in this run: `harness signoff` runs this check against the stack",
            )
        try:
            return CheckResult(CheckStatus(str(found["status"])), str(found["evidence"]))
        except (KeyError, ValueError):
            return CheckResult(CheckStatus.FAIL, f"the results file holds an unreadable record for {check_id}: {found}")

    return check


def _spec_fact(fact: str, when_resolved: str) -> Check:
    """Items the design cannot meet as written: an open contradiction fails, a resolved one is explained."""

    def check(ctx: CheckContext) -> CheckResult:
        for finding in ctx.spec_findings:
            if finding.fact == fact:
                if finding.is_error:
                    return CheckResult(CheckStatus.FAIL, f"spec lint: {finding.message}")
                if finding.kind is FindingKind.RESOLVED:
                    return CheckResult(CheckStatus.NOT_EMULATED, f"{when_resolved} Spec lint: {finding.message}")
        return CheckResult(CheckStatus.NOT_CHECKED_YET, f"spec lint did not run or has no finding on {fact}")

    return check


def _cost_within_budget(ctx: CheckContext) -> CheckResult:
    found = [r for r in ctx.thresholds if r.threshold.metric == "cost.monthly_usd"]
    result = judge_thresholds(found, "the monthly cost projection")
    budget = ctx.spec.value("cost.monthly_budget_usd") if ctx.spec is not None else None
    if result.status is CheckStatus.NOT_CHECKED_YET or found[0].measured is None or budget is None:
        return result
    within = found[0].measured <= float(budget)
    evidence = (
        f"projected {found[0].measured:.2f} USD/month against the budget of {budget} USD (unit.yaml); {result.evidence}"
    )
    if not within:
        return CheckResult(CheckStatus.FAIL, evidence)
    return CheckResult(result.status, evidence)


def _security_findings(item: str) -> Check:
    """An item `harness verify security` decides: the worst of its findings in the run's facts."""

    def check(ctx: CheckContext) -> CheckResult:
        security = ctx.run.get("security")
        findings = (
            [f for f in security.get("findings", []) if f.get("item") == item] if isinstance(security, dict) else []
        )
        if not findings:
            return CheckResult(
                CheckStatus.NOT_CHECKED_YET, "the security scenario did not run (harness verify security)"
            )
        statuses = {str(f.get("status")) for f in findings}
        evidence = "; ".join(f"{f.get('check')}: {f.get('status')}: {f.get('evidence')}" for f in findings)
        if statuses & {"FAIL", "ERROR"}:
            return CheckResult(CheckStatus.FAIL, evidence)
        if "PASS" in statuses:
            # Parts NOT EMULATED (the direct endpoint) stay named in the evidence.
            return CheckResult(CheckStatus.PASS, evidence)
        return CheckResult(CheckStatus.NOT_EMULATED, evidence)

    return check


def _cloudwatch_fact(ctx: CheckContext, part: str) -> Mapping[str, Any] | None:
    """`run.cloudwatch.<part>`, written by the scenario session from the stack's CloudWatch
    (harness/monitoring/evidence.py)."""
    facts = ctx.run.get("cloudwatch")
    found = facts.get(part) if isinstance(facts, Mapping) else None
    return found if isinstance(found, Mapping) else None


_NOT_RECORDED = "not recorded in this run: the scenario session records it from the stack's CloudWatch"


def _alarms_configured_and_tested(ctx: CheckContext) -> CheckResult:
    """Deployed: describe_alarms lists every alarm the thresholds call for, with SNS actions. Tested: every
    alarm family's drill ran in this run and passed; a drill not run or not breached is not a pass."""
    deployed = _cloudwatch_fact(ctx, "alarms")
    if deployed is None:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, _NOT_RECORDED)
    problems = [*deployed.get("missing", []), *deployed.get("without_sns_actions", [])]
    listed = (
        f"describe_alarms lists {deployed.get('listed_with_sns_actions')} of {deployed.get('expected')} alarms "
        "with SNS actions"
    )
    if problems:
        return CheckResult(CheckStatus.FAIL, f"{listed}; missing or without SNS actions: {', '.join(problems)}")
    drills = ctx.run.get(str(deployed.get("drills_fact", "alarm_drills")))
    drills = drills if isinstance(drills, Mapping) else {}
    failed_tests = _failed_scenario_checks(ctx, "test_alarm_drills")
    parts, untested, failed = [], [], list(failed_tests)
    for family in deployed.get("drills_expected", []):
        outcome = drills.get(family)
        if not isinstance(outcome, Mapping):
            untested.append(f"{family}: drill not run")
            continue
        status = str(outcome.get("status"))
        line = f"{family}: {status}: {outcome.get('evidence')}; judged by {outcome.get('judged_by')}"
        if status == "PASS":
            parts.append(line)
        elif status == "FAIL":
            failed.append(line)
        else:
            untested.append(line)
    evidence = "; ".join([listed, *failed, *untested, *parts])
    if failed:
        return CheckResult(CheckStatus.FAIL, evidence)
    if untested:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, evidence)
    return CheckResult(CheckStatus.PASS, evidence)


def _metrics_flowing(ctx: CheckContext) -> CheckResult:
    """Every metric the unit publishes has datapoints in the run's window on the stack's CloudWatch. A
    namespace with no datapoint at all (no Lambda invoked in this run) is not checked, not passed."""
    metrics = _cloudwatch_fact(ctx, "metrics")
    if metrics is None:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, _NOT_RECORDED)
    counts = {str(k): int(v) for k, v in dict(metrics.get("datapoints", {})).items()}
    if not counts:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, "no published metric was listed")
    namespaces: dict[str, list[tuple[str, int]]] = {}
    for key, n in counts.items():
        namespaces.setdefault(key.split(" ")[0], []).append((key, n))
    silent = [ns for ns, found in namespaces.items() if not any(n for _, n in found)]
    missing = [key for ns, found in namespaces.items() if ns not in silent for key, n in found if not n]
    flowing = sum(1 for n in counts.values() if n)
    evidence = f"{flowing} of {len(counts)} published metrics have datapoints in the run (GetMetricStatistics)"
    if missing:
        return CheckResult(CheckStatus.FAIL, f"{evidence}; no datapoint: {', '.join(missing)}")
    if silent:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, f"{evidence}; nothing at all in {', '.join(silent)}")
    return CheckResult(CheckStatus.PASS, evidence)


def _log_aggregation(ctx: CheckContext) -> CheckResult:
    """Every function invoked in the run has its REPORT lines in its CloudWatch Logs group."""
    found = _cloudwatch_fact(ctx, "logs")
    if found is None:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, _NOT_RECORDED)
    groups = {str(k): dict(v) for k, v in dict(found.get("groups", {})).items()}
    metrics = _cloudwatch_fact(ctx, "metrics") or {}
    counts = dict(metrics.get("datapoints", {}))
    invoked = {name for name in groups if int(counts.get(f"AWS/Lambda Invocations FunctionName={name}", 0)) > 0}
    lines = {name: int(g.get("report_lines", 0)) for name, g in groups.items()}
    evidence = "; ".join(
        f"{g.get('group')}: {lines[name]} REPORT lines in the run"
        f"{'' if name in invoked else ' (not invoked)'}, retention "
        f"{g.get('retention_days') or 'never expires'}"
        for name, g in groups.items()
    )
    silent = sorted(name for name in invoked if lines[name] == 0)
    if silent:
        return CheckResult(
            CheckStatus.FAIL, f"invoked but nothing reached CloudWatch Logs: {', '.join(silent)}; {evidence}"
        )
    if not any(lines.values()):
        return CheckResult(CheckStatus.NOT_CHECKED_YET, f"no function logged in this run; {evidence}")
    return CheckResult(CheckStatus.PASS, evidence)


def _dashboards_displaying(ctx: CheckContext) -> CheckResult:
    """The dashboards are on the stack and every widget the local unit can feed shows datapoints of the run."""
    found = _cloudwatch_fact(ctx, "dashboards")
    if found is None:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, _NOT_RECORDED)
    absent, empty, shown, not_emulated = [], [], 0, 0
    for name, dashboard in dict(found.get("dashboards", {})).items():
        if not dashboard.get("on_stack"):
            absent.append(str(name))
        for widget in dashboard.get("widgets", []):
            lines = widget.get("lines", [])
            if widget.get("not_emulated") or (lines and all(line.get("not_emulated") for line in lines)):
                not_emulated += 1
            elif any(line.get("points") for line in lines):
                shown += 1
            else:
                empty.append(f"{name}: {widget.get('title')}")
    evidence = f"{shown} widgets show the run's datapoints; {not_emulated} NOT EMULATED (no VPC, NAT or bill locally)"
    if absent:
        return CheckResult(CheckStatus.FAIL, f"not on the stack: {', '.join(absent)}; {evidence}")
    if empty:
        return CheckResult(CheckStatus.NOT_CHECKED_YET, f"{evidence}; no datapoint in this run: {'; '.join(empty)}")
    return CheckResult(CheckStatus.PASS, evidence)


CHECKS: dict[str, Check] = {
    **{f"not_emulated.{key}": _not_emulated(reason) for key, reason in NOT_EMULATED_REASONS.items()},
    **{
        f"live.{key}": _recorded(f"live.{key}")
        for key in (
            "proxy_connect",
            "pgvector",
            "kms_key",
            "db_secret",
            "loopback_only",
            "automated_backups",
            "backup_schedule",
            "backup_retention",
            "manual_snapshot",
        )
    },
    "cost.within_budget": _cost_within_budget,
    "spec.network_cidr": _spec_fact(
        "network.client_cidr",
        "No VPC locally; the document's own ranges disagree (its NACL would admit no VPC client).",
    ),
    "spec.nat_gateway": _spec_fact(
        "network.nat_gateway", "No NAT Gateway locally, and the spec resolves it as not required."
    ),
    "spec.cross_region_backup": _spec_fact(
        "backup.cross_region", "The design is single-region; a cross-region copy cannot exist in it."
    ),
    "lambda.redis_reached": _thresholds(
        lambda m: m == "lambda.data_deletion.error_rate_pct",
        "data_deletion's error rate (it deletes the user's cache keys in Redis on every call)",
    ),
    "lambda.database_reached": _thresholds(
        lambda m: m.startswith("lambda.") and m.endswith(".error_rate_pct"), "the functions' error rates"
    ),
    "thresholds.pooling": _thresholds(
        lambda m: m.startswith("proxy.") or m == "rds.connections_pct", "the proxy", scenario="connection_pooling"
    ),
    "thresholds.cache": _thresholds(
        lambda m: m.startswith("cache.hit_rate"), "the cache hit rate", scenario="cache_hit_rate"
    ),
    "thresholds.vector_search": _thresholds(
        lambda m: m.startswith("vector_search."), "vector search", scenario="vector_search"
    ),
    "thresholds.lambda_duration": _thresholds(
        lambda m: m.startswith("lambda.") and m.endswith(".duration_ms"),
        "Lambda durations",
        scenario="lambda_durations",
    ),
    "cloudwatch.alarms": _alarms_configured_and_tested,
    "cloudwatch.metrics_flowing": _metrics_flowing,
    "cloudwatch.dashboards": _dashboards_displaying,
    "cloudwatch.log_aggregation": _log_aggregation,
    "security.in_transit": _security_findings("Encryption in transit verified"),
    "drills.restore": _thresholds(
        lambda m: m.startswith("drill.restore.") or m == "drill.crash.lost_writes",
        "the database drill's restore to a new instance",
        scenario="test_drills",
    ),
    # The document's emergency procedures are documented as runnable drills (`harness drill NAME`): the
    # item holds when this run's drills carried them out within their thresholds.
    "drills.recovery_procedures": _thresholds(
        lambda m: m.startswith("drill."),
        "the failure drills (database, cache, proxy, services)",
        scenario="test_drills",
    ),
}
