"""The checklist: every item of the design document, in its words, decided by a registered check; a
missing check is NOT CHECKED YET and a broken one FAIL, never PASS."""

from __future__ import annotations

import re

import pytest

from harness.checklist import (
    CHECKLIST,
    CHECKS,
    POST_DEPLOYMENT,
    PRE_DEPLOYMENT,
    CheckResult,
    CheckStatus,
    checklist_exit_code,
    evaluate_checklist,
)
from harness.checklist.checks import judge_thresholds
from harness.spec import load_unit_spec, read_document
from harness.thresholds import ExitCode, Status, Threshold, ThresholdResult, parse_expression


def _document_items(block: str) -> list[tuple[str, str]]:
    """(group, item text) for each `- [ ] ...` line of a checklist block of the design document."""
    text = read_document(load_unit_spec().document).text_under("Operational Procedures > Deployment Checklist") or ""
    body = text[text.index(f"{block}:") :]
    body = body[: body.index("```")]
    items, group = [], ""
    for line in body.splitlines():
        if m := re.match(r"^  (\w+):\s*$", line):
            group = m.group(1)
        elif m := re.match(r"^\s+- \[ \] (.+?)\s*$", line):
            items.append((group, m.group(1)))
    return items


@pytest.mark.parametrize(("block", "items"), [("pre_deployment", PRE_DEPLOYMENT), ("post_deployment", POST_DEPLOYMENT)])
def test_the_checklist_holds_every_item_of_the_document_in_its_words_and_order(block, items):
    assert [(i.group, i.text) for i in items] == _document_items(block)


def test_the_document_has_16_pre_and_20_post_deployment_items():
    assert (len(PRE_DEPLOYMENT), len(POST_DEPLOYMENT)) == (16, 20)
    assert len({i.id for i in CHECKLIST}) == 36


def test_every_named_check_is_registered_and_every_unnamed_one_says_which_work_brings_it():
    for item in CHECKLIST:
        if item.check is None:
            assert item.pending.startswith("issue "), item.id
        else:
            assert item.check in CHECKS, item.id


def test_an_empty_run_passes_nothing():
    results = evaluate_checklist({}, [])
    assert not [r for r in results if r.result.status is CheckStatus.PASS]
    assert checklist_exit_code(results) == ExitCode.PASS


def test_recorded_live_checks_are_read_back_from_the_run():
    run = {"checks": {"live.proxy_connect": {"status": "PASS", "evidence": "SELECT 1 in 3 ms"}}}
    (item,) = [r for r in evaluate_checklist(run, []) if r.item.id == "post.connectivity_tests.rds_via_proxy"]
    assert (item.result.status, item.result.evidence) == (CheckStatus.PASS, "SELECT 1 in 3 ms")


def test_wiring_a_check_is_one_line_and_a_check_that_raises_fails_its_item(monkeypatch):
    def alarms(ctx):
        return CheckResult(CheckStatus.PASS, "9 alarms at the signed-off levels")

    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(CHECKS, "live.kms_key", broken)
    items = list(CHECKLIST)
    index = next(i for i, item in enumerate(items) if item.id == "post.monitoring_tests.alarms")
    monkeypatch.setitem(CHECKS, "alarms.configured", alarms)
    monkeypatch.setattr(
        "harness.checklist.evaluate.CHECKLIST",
        (
            *items[:index],
            items[index].__class__(**{**items[index].__dict__, "check": "alarms.configured"}),
            *items[index + 1 :],
        ),
    )
    results = {r.item.id: r.result for r in evaluate_checklist({}, [])}
    assert results["post.monitoring_tests.alarms"].status is CheckStatus.PASS
    assert results["pre.security_validation.kms_keys"].status is CheckStatus.FAIL
    assert "RuntimeError: boom" in results["pre.security_validation.kms_keys"].evidence
    assert checklist_exit_code(list(evaluate_checklist({}, []))) == ExitCode.FAIL


def _judged(metric: str, status: Status) -> ThresholdResult:
    threshold = Threshold(metric, metric, "s", None, parse_expression("value < 300s"), "test", True, "t.yaml:1")
    measured = None if status is Status.NOT_EMULATED else 1.0
    return ThresholdResult(threshold, status, measured, 300.0, "critical", 299.0, 1, "no backups on this backend")


def test_an_item_whose_thresholds_are_all_not_emulated_is_not_emulated_and_a_judged_one_decides_otherwise():
    restore = _judged("drill.restore.rto_s", Status.NOT_EMULATED)
    crash = _judged("drill.crash.recovery_s", Status.PASS)
    only = judge_thresholds([restore], "restores")
    assert only.status is CheckStatus.NOT_EMULATED and "no backups on this backend" in only.evidence
    assert judge_thresholds([restore, crash], "drills").status is CheckStatus.PASS
