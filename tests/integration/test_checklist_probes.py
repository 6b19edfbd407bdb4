"""The checklist's live checks against the running unit: each item they decide is shown with evidence a
reader can check, no secret in it; a dead endpoint fails its item instead of hanging or passing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.checklist import PROBES, CheckStatus, evaluate_checklist, run_probes
from harness.endpoints import PostgresEndpoint, StackEndpoints

pytestmark = pytest.mark.integration


def test_the_live_checks_pass_against_the_running_unit_with_evidence_and_no_secret(stack: StackEndpoints):
    recorded = run_probes(stack)
    statuses = {check: record["status"] for check, record in recorded.items()}
    assert set(statuses) == set(PROBES)
    backups = {"live.automated_backups", "live.backup_schedule", "live.backup_retention", "live.manual_snapshot"}
    assert {check: status for check, status in statuses.items() if check not in backups} == {
        "live.proxy_connect": "PASS",
        "live.pgvector": "PASS",
        "live.kms_key": "PASS",
        "live.db_secret": "PASS",
        "live.loopback_only": "NOT EMULATED",
    }, recorded
    # The backup probes' verdicts depend on what this stack archived (tests/integration/test_backup.py
    # decides each one); here each states its evidence.
    assert all(recorded[check]["evidence"] for check in PROBES)
    assert "<=> '[0,1,0]'` = 1 (expected 1)" in recorded["live.pgvector"]["evidence"]
    assert f"{stack.proxy.host}:{stack.proxy.port}" in recorded["live.proxy_connect"]["evidence"]
    text = json.dumps(recorded)
    for secret in (stack.proxy.password.reveal(), stack.redis.password.reveal()):
        assert secret not in text
    items = {r.item.id: r.result for r in evaluate_checklist({"checks": recorded}, [])}
    assert items["post.connectivity_tests.rds_via_proxy"].status is CheckStatus.PASS
    assert items["pre.security_validation.kms_keys"].status is CheckStatus.PASS


def test_an_unreachable_proxy_fails_its_item_within_the_connect_timeout(stack: StackEndpoints):
    # A closed port on loopback: refused at once, so the item fails without waiting for any timeout.
    dead: PostgresEndpoint = dataclasses.replace(stack.proxy, port=1)
    recorded = run_probes(dataclasses.replace(stack, proxy=dead))
    assert recorded["live.proxy_connect"]["status"] == "FAIL"
    assert "OperationalError" in recorded["live.proxy_connect"]["evidence"]
    assert recorded["live.pgvector"]["status"] == "PASS"  # one dead endpoint does not hide the others
